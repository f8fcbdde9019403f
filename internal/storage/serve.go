package storage

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// maxAuthFailures closes a stream after that many failed authentications.
const maxAuthFailures = 3

// Protocol is the provider's stream protocol for its network.
func (p *Provider) Protocol() string { return wire.Protocol(p.cfg.Params.ID) }

// Serve handles one inbound storage stream (register it with HandleStream(p.Protocol(), p.Serve)).
// Requests are answered in order, one response each (protocol.md §12.1); a watch turns the stream into
// a push stream.
func (p *Provider) Serve(st p2p.Stream) {
	p.mu.Lock()
	if p.isClosed() {
		p.mu.Unlock()
		_ = st.Reset()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()
	select {
	case p.streams <- struct{}{}:
		defer func() { <-p.streams }()
	default:
		_ = wire.WriteMsg(st, wire.MsgError{E: wire.Error{Code: wire.CodeRateLimited, Msg: "provider busy: retry later"}})
		_ = st.Close()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.closed:
			_ = st.Reset()
		case <-ctx.Done():
		}
	}()
	c := &conn{p: p, st: st, addr: ipOf(st.RemoteAddr())}
	defer st.Close()
	for {
		_ = st.SetDeadline(time.Now().Add(p.cfg.IdleTimeout))
		m, err := wire.ReadMsgLimit(st, wire.MaxRequest)
		if err != nil {
			if errors.Is(err, wire.ErrMalformed) {
				_ = wire.WriteMsg(st, wire.MsgError{E: wire.Error{Code: wire.CodeMalformed, Msg: err.Error()}})
			}
			return
		}
		if _, ok := m.(wire.MsgWatch); ok && c.authed != nil {
			c.watch(ctx)
			return
		}
		resp := c.handle(ctx, m)
		if err := wire.WriteMsg(st, resp); err != nil {
			return
		}
		if c.authFails >= maxAuthFailures {
			return
		}
	}
}

// conn is one stream's state.
type conn struct {
	p         *Provider
	st        p2p.Stream
	addr      string
	nonce     *[wire.NonceSize]byte
	chID      wire.SubID
	authed    *wire.SubID
	authFails int
}

func errMsg(err error) wire.Msg {
	var we *wire.Error
	if errors.As(err, &we) {
		return wire.MsgError{E: *we}
	}
	return wire.MsgError{E: wire.Error{Code: wire.CodeInternal, Msg: "the provider failed: retry later"}}
}

func (c *conn) handle(ctx context.Context, m wire.Msg) wire.Msg {
	p := c.p
	switch m := m.(type) {
	case wire.MsgCreate:
		id, state, err := p.create(ctx, m.Req, c.addr)
		if err != nil {
			c.logInternal("create", err)
			return errMsg(err)
		}
		return wire.MsgCreated{ID: id, State: state}
	case wire.MsgChallenge:
		var n [wire.NonceSize]byte
		if _, err := rand.Read(n[:]); err != nil {
			return errMsg(err)
		}
		c.nonce, c.chID, c.authed = &n, m.ID, nil
		return wire.MsgNonce{Nonce: n}
	case wire.MsgAuth:
		nonce := c.nonce
		c.nonce = nil // one signature per challenge: a nonce is never accepted twice
		if nonce == nil {
			c.authFails++
			return errMsg(wire.Errorf(wire.CodeUnauthorized, "ask for a challenge first"))
		}
		s, ok := p.lookup(c.chID)
		if !ok || !ed25519.Verify(s.key, wire.AuthMessage(c.st.LocalPeer(), c.chID, *nonce), m.Sig[:]) {
			c.authFails++
			p.ctr.authFail.Add(1)
			return errMsg(wire.Errorf(wire.CodeUnauthorized, "authentication failed: unknown subscription or wrong key"))
		}
		id := c.chID
		c.authed = &id
		p.mu.Lock()
		p.authed[c.st.RemotePeer()] = id
		p.mu.Unlock()
		p.ctr.authOK.Add(1)
		return wire.MsgOK{}
	case wire.MsgStatus:
		s, err := c.sub(false)
		if err != nil {
			return errMsg(err)
		}
		return wire.MsgStatusResp{S: s.status()}
	case wire.MsgFetch:
		s, err := c.sub(true)
		if err != nil {
			return errMsg(err)
		}
		b, err := p.fetch(ctx, s.id, m.After, m.MaxCount, m.MaxBytes)
		if err != nil {
			c.logInternal("fetch", err)
			return errMsg(err)
		}
		return b
	case wire.MsgRelease:
		s, err := c.sub(true)
		if err != nil {
			return errMsg(err)
		}
		if err := p.release(ctx, s.id, m.UpTo); err != nil {
			c.logInternal("release", err)
			return errMsg(err)
		}
		return wire.MsgOK{}
	case wire.MsgWatch:
		return errMsg(wire.Errorf(wire.CodeUnauthorized, "authenticate before watching"))
	case wire.MsgPublish:
		return c.publish(ctx, m.Raw)
	case wire.MsgTips:
		if !p.cfg.Public {
			return errMsg(wire.Errorf(wire.CodeRefused, "not a public node"))
		}
		if p.cfg.Params.ShardBits < 32 && m.Shard >= 1<<p.cfg.Params.ShardBits {
			return errMsg(wire.Errorf(wire.CodeNotFound, "no shard %d", m.Shard))
		}
		n := min(max(int(m.N), 1), wire.MaxTips)
		ids := p.cfg.Tips.SelectParents(m.Shard, n)
		if len(ids) > wire.MaxTips {
			ids = ids[:wire.MaxTips]
		}
		return wire.MsgTipsResp{IDs: ids}
	}
	return errMsg(wire.Errorf(wire.CodeMalformed, "unexpected message type 0x%02x", m.Type()))
}

func (c *conn) logInternal(op string, err error) {
	var we *wire.Error
	if !errors.As(err, &we) {
		c.p.log.Warn("storage: request failed", "op", op, "err", err)
	}
}

// sub returns the authenticated subscription; serving requires it to be active and unexpired.
func (c *conn) sub(serving bool) (sub, error) {
	if c.authed == nil {
		return sub{}, wire.Errorf(wire.CodeUnauthorized, "authenticate first (challenge, then auth)")
	}
	s, ok := c.p.lookup(*c.authed)
	if !ok {
		return sub{}, wire.Errorf(wire.CodeNotFound, "the subscription no longer exists")
	}
	if serving {
		if err := c.p.usable(s); err != nil {
			return sub{}, err
		}
	}
	return s, nil
}

// publish validates a client's block, PoW first, then the client's rate limit, then the rest, and hands
// it to the network (protocol.md §12.6). The OK means the node stored it and published it.
func (c *conn) publish(ctx context.Context, raw []byte) wire.Msg {
	p := c.p
	refuse := func(code wire.Code, format string, args ...any) wire.Msg {
		p.ctr.publishRefused.Add(1)
		return errMsg(wire.Errorf(code, format, args...))
	}
	if !p.cfg.Public {
		return refuse(wire.CodeRefused, "not a public node: publish through another provider")
	}
	if err := p.cfg.Params.CheckPoW(raw); err != nil {
		if errors.Is(err, tangle.ErrPoW) {
			return refuse(wire.CodeBadPoW, "%v", err)
		}
		return refuse(wire.CodeBadBlock, "%v", err)
	}
	if !p.limiter.allow(c.addr, time.Now()) {
		return refuse(wire.CodeRateLimited, "more than %.0f blocks/s from this client: retry later", p.cfg.PublishRate)
	}
	b, err := p.cfg.Params.Validate(raw, p.cfg.Now())
	if err != nil {
		return refuse(wire.CodeBadBlock, "%v", err)
	}
	if err := p.cfg.Publisher.Publish(ctx, b); err != nil {
		var ve *tangle.ValidationError
		if errors.As(err, &ve) {
			return refuse(wire.CodeBadBlock, "%v", err)
		}
		p.log.Warn("storage: publish for a client failed", "block", b.ID().Short(), "err", err)
		return refuse(wire.CodeInternal, "the node could not publish the block: retry later")
	}
	p.ctr.published.Add(1)
	return wire.MsgOK{}
}

// watch pushes the subscription's newly stored blocks until the client closes the stream, the
// provider closes or a write fails. A full push queue drops (the client fetches from its cursor).
func (c *conn) watch(ctx context.Context) {
	s, err := c.sub(true)
	if err != nil {
		_ = wire.WriteMsg(c.st, errMsg(err))
		return
	}
	ch, stop := c.p.watch(s.id)
	defer stop()
	_ = c.st.SetDeadline(time.Time{})
	if err := wire.WriteMsg(c.st, wire.MsgOK{}); err != nil {
		return
	}
	gone := make(chan struct{})
	go func() { // the client sends nothing more: a read returns when it closes the stream
		var b [1]byte
		_, _ = c.st.Read(b[:])
		close(gone)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case <-c.p.closed:
			return
		case pu := <-ch:
			_ = c.st.SetDeadline(time.Now().Add(30 * time.Second))
			if err := wire.WriteMsg(c.st, wire.MsgPush{P: pu}); err != nil {
				return
			}
		}
	}
}

// ipOf extracts the IP address of a multiaddr ("/ip4/1.2.3.4/tcp/…" → "1.2.3.4").
func ipOf(ma string) string {
	parts := strings.Split(ma, "/")
	if len(parts) >= 3 && (parts[1] == "ip4" || parts[1] == "ip6") {
		return parts[2]
	}
	return ma
}

// buckets are token buckets per client.
type buckets struct {
	rate  float64
	burst float64
	mu    sync.Mutex
	m     map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newBuckets(rate float64, burst int) *buckets {
	return &buckets{rate: rate, burst: float64(burst), m: map[string]*bucket{}}
}

func (b *buckets) allow(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.m[key]
	if bk == nil {
		if len(b.m) >= 4096 {
			clear(b.m)
		}
		bk = &bucket{tokens: b.burst, last: now}
		b.m[key] = bk
	}
	bk.tokens = min(b.burst, bk.tokens+now.Sub(bk.last).Seconds()*b.rate)
	bk.last = now
	if bk.tokens < 1 {
		return false
	}
	bk.tokens--
	return true
}
