package p2p

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// errBusy: the responder refused the request for now (rate limit or no free stream slot).
var errBusy = errors.New("p2p: peer busy")

// request sends one request to p on a new stream and reads its response. It never dials: requests go
// to connected peers only.
func (n *Node) request(ctx context.Context, p peer.ID, req *message) (*message, error) {
	ctx, cancel := context.WithTimeout(ctx, n.lim.RequestTimeout)
	defer cancel()
	n.ctr.requestsSent.Add(1)
	resp, err := n.roundTrip(ctx, p, req)
	if err != nil {
		n.ctr.requestsFailed.Add(1)
	}
	return resp, err
}

func (n *Node) roundTrip(ctx context.Context, p peer.ID, req *message) (*message, error) {
	s, err := n.host.NewStream(network.WithNoDial(ctx, "block request"), p, n.proto)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := writeFrame(s, req.encode()); err != nil {
		_ = s.Reset()
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return nil, err
	}
	body, err := readFrame(s, maxFrame)
	if err != nil {
		_ = s.Reset()
		return nil, err
	}
	_ = s.Close()
	m, err := decodeMessage(body)
	if err != nil {
		n.offence(p, "response", 1)
		return nil, err
	}
	if m.Type == msgError {
		if m.Code == errCodeBusy {
			return nil, errBusy
		}
		return nil, fmt.Errorf("p2p: peer refused request (code %d)", m.Code)
	}
	return m, nil
}

// handleStream serves one inbound request (protocol /tanglemail/<NID>/blocks/1).
func (n *Node) handleStream(s network.Stream) {
	p := s.Conn().RemotePeer()
	if !n.enter() {
		_ = s.Reset()
		return
	}
	defer n.leave()
	defer n.recoverPanic("stream")
	_ = s.SetDeadline(time.Now().Add(n.lim.RequestTimeout))
	if !n.acquireInbound(p) {
		n.ctr.requestsRefused.Add(1)
		n.reply(s, &message{Type: msgError, Code: errCodeBusy})
		return
	}
	defer n.releaseInbound(p)
	body, err := readFrame(s, maxRequestFrame)
	if err != nil {
		n.ctr.requestsRefused.Add(1)
		if errors.Is(err, errWire) {
			n.offence(p, "request", 1)
		}
		_ = s.Reset()
		return
	}
	req, err := decodeMessage(body)
	if err != nil {
		n.ctr.requestsRefused.Add(1)
		n.offence(p, "request", 1)
		n.reply(s, &message{Type: msgError, Code: errCodeBadRequest})
		return
	}
	if !n.reqLimit.allow(p, time.Now()) {
		n.ctr.requestsRefused.Add(1)
		n.reply(s, &message{Type: msgError, Code: errCodeBusy})
		return
	}
	n.ctr.requestsServed.Add(1)
	n.reply(s, n.serve(p, req))
}

func (n *Node) reply(s network.Stream, m *message) {
	if err := writeFrame(s, m.encode()); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func (n *Node) acquireInbound(p peer.ID) bool {
	select {
	case n.inbound <- struct{}{}:
	default:
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.inboundPeer[p] >= n.lim.MaxInboundPeer {
		<-n.inbound
		return false
	}
	n.inboundPeer[p]++
	return true
}

func (n *Node) releaseInbound(p peer.ID) {
	n.mu.Lock()
	if n.inboundPeer[p]--; n.inboundPeer[p] <= 0 {
		delete(n.inboundPeer, p)
	}
	n.mu.Unlock()
	<-n.inbound
}

// serve answers a decoded request.
func (n *Node) serve(p peer.ID, req *message) *message {
	switch req.Type {
	case msgGetBlocks:
		if len(req.IDs) > n.lim.MaxIDsPerGet {
			return &message{Type: msgError, Code: errCodeBadRequest}
		}
		now := n.now()
		resp := &message{Type: msgBlocks}
		size := 0
		for _, id := range req.IDs {
			b, err := n.store.Get(id)
			if errors.Is(err, dag.ErrNotFound) {
				continue
			}
			if err != nil {
				return &message{Type: msgError, Code: errCodeInternal}
			}
			if b.Expired(now) {
				continue
			}
			if size+len(b.Raw) > n.lim.MaxResponseBytes {
				break
			}
			size += len(b.Raw)
			resp.Blocks = append(resp.Blocks, b.Raw)
		}
		return resp
	case msgGetIDs:
		now := n.now()
		since := max(req.Since, now.Add(-time.Duration(tangle.MaxTTL)*time.Second).UnixMilli())
		limit := min(req.Limit, n.lim.MaxIDsPerPage)
		cs, err := n.store.IDsSince(req.Shard, time.UnixMilli(since), dag.Cursor{Time: req.After.Time, ID: req.After.ID}, limit)
		if err != nil {
			return &message{Type: msgError, Code: errCodeInternal}
		}
		resp := &message{Type: msgIDs, More: len(cs) >= limit, Items: make([]cursor, len(cs))}
		for i, c := range cs {
			resp.Items[i] = cursor{Time: c.Time, ID: c.ID}
		}
		return resp
	case msgGetDigest:
		if req.Since < n.now().Add(-time.Duration(tangle.MaxTTL)*time.Second).UnixMilli() {
			return &message{Type: msgError, Code: errCodeBadRequest}
		}
		ds, err := n.digests(req.Shard, req.Since, req.Slot, len(req.Digest))
		if errors.Is(err, errDigestTooLarge) {
			return &message{Type: msgError, Code: errCodeBusy}
		}
		if err != nil {
			return &message{Type: msgError, Code: errCodeInternal}
		}
		return &message{Type: msgDigest, Digest: ds}
	case msgAnnounce:
		n.ctr.announcesRecv.Add(1)
		if containsShard(n.shards, req.Shard) {
			n.catchup.schedule(p, kindAnnounce, map[uint32]int64{req.Shard: req.Since})
		}
		return &message{Type: msgOK}
	}
	n.offence(p, "request", 1)
	return &message{Type: msgError, Code: errCodeBadRequest}
}

// fetch asks p for blocks by id, validates what comes back (without the gossip freshness rule) and
// stores it. Blocks that were not asked for, or are invalid, count against p. It returns the newly
// stored blocks.
func (n *Node) fetch(ctx context.Context, p peer.ID, ids []tangle.ID) ([]*tangle.Block, error) {
	resp, err := n.request(ctx, p, &message{Type: msgGetBlocks, IDs: ids})
	if err != nil {
		return nil, err
	}
	if resp.Type != msgBlocks {
		n.offence(p, "response", 1)
		return nil, fmt.Errorf("p2p: unexpected response type 0x%02x", resp.Type)
	}
	want := make(map[tangle.ID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	now := n.now()
	valid := make([]*tangle.Block, 0, len(resp.Blocks))
	for _, raw := range resp.Blocks {
		b, err := n.params.Validate(raw, now)
		if err != nil {
			if errors.Is(err, tangle.ErrExpired) {
				continue // expired in flight
			}
			reason, w := rejectReason(err)
			n.ctr.fetchInvalid.Add(1)
			n.ctr.reject("fetched-" + reason)
			n.offence(p, "fetched-"+reason, w)
			continue
		}
		if !want[b.ID()] {
			n.ctr.fetchInvalid.Add(1)
			n.offence(p, "unsolicited", 1)
			continue
		}
		delete(want, b.ID())
		valid = append(valid, b)
	}
	if len(valid) == 0 {
		return nil, nil
	}
	added, err := n.store.Put(n.ctx, valid...) // not ctx: see the validator's Put
	if err != nil {
		return nil, fmt.Errorf("p2p: store: %w", err)
	}
	var out []*tangle.Block
	for i, b := range valid {
		n.seen.add(b.ID())
		if added[i] {
			n.ctr.fetched.Add(1)
			n.stored(b, true)
			out = append(out, b)
		}
	}
	return out, nil
}
