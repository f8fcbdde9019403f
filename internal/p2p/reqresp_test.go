package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// rawRequest writes raw bytes on a new block-protocol stream and reads one response frame.
func rawRequest(h host.Host, n *Node, raw []byte) (*message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, n.host.ID(), n.proto)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write(raw); err != nil {
		return nil, err
	}
	s.CloseWrite()
	body, err := readFrame(s, maxFrame)
	if err != nil {
		return nil, err
	}
	return decodeMessage(body)
}

func frame(m *message) []byte {
	body := m.encode()
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// TestRequestProtocol: honest requests are served; oversized frames, malformed requests and responses
// sent as requests are refused and charged to the sender, a request flood gets "busy", and a peer that
// keeps abusing the protocol is banned.
func TestRequestProtocol(t *testing.T) {
	params := tangle.BenchNet
	lim := testLimits()
	lim.RequestRate, lim.RequestBurst = 5, 10
	st := openTestStore(t, params)
	n := startNode(t, params, st, tcpOnly, WithLimits(lim))
	blk := makeBlock(t, params, nil, 0, time.Now())
	if _, err := st.Put(context.Background(), blk); err != nil {
		t.Fatal(err)
	}
	adv := newRawPeer(t, n.topicName(0))
	adv.connect(t, n)
	advID := adv.h.ID()

	// Served: get-blocks (one known id, one unknown), get-ids, get-digest.
	resp, err := rawRequest(adv.h, n, frame(&message{Type: msgGetBlocks, IDs: []tangle.ID{blk.ID(), {9}}}))
	if err != nil || resp.Type != msgBlocks || len(resp.Blocks) != 1 {
		t.Fatalf("get-blocks: %v %+v", err, resp)
	}
	resp, err = rawRequest(adv.h, n, frame(&message{Type: msgGetIDs, Since: time.Now().Add(-time.Hour).UnixMilli(), Limit: 10}))
	if err != nil || resp.Type != msgIDs || len(resp.Items) != 1 || resp.Items[0].ID != blk.ID() || resp.More {
		t.Fatalf("get-ids: %v %+v", err, resp)
	}
	resp, err = rawRequest(adv.h, n, frame(&message{Type: msgGetDigest, Since: time.Now().Add(-time.Hour).UnixMilli(),
		Slot: int64(2 * time.Hour / time.Millisecond), Digest: make([]digest, 1)}))
	if err != nil || resp.Type != msgDigest || len(resp.Digest) != 1 || resp.Digest[0].N != 1 || resp.Digest[0].XOR != blk.ID() {
		t.Fatalf("get-digest: %v %+v", err, resp)
	}
	if n.misbehave.score(advID, time.Now()) != 0 {
		t.Fatal("honest requests charged")
	}

	// Abuse, each charged: a response type as a request, a malformed body, an oversized frame.
	resp, err = rawRequest(adv.h, n, frame(&message{Type: msgBlocks}))
	if err != nil || resp.Type != msgError || resp.Code != errCodeBadRequest {
		t.Fatalf("blocks as request: %v %+v", err, resp)
	}
	resp, err = rawRequest(adv.h, n, append(binary.LittleEndian.AppendUint32(nil, 2), msgOK, 0))
	if err != nil || resp.Type != msgError || resp.Code != errCodeBadRequest {
		t.Fatalf("malformed: %v %+v", err, resp)
	}
	if _, err := rawRequest(adv.h, n, binary.LittleEndian.AppendUint32(nil, 1<<30)); err == nil {
		t.Fatal("oversized frame answered")
	}
	if sc := n.misbehave.score(advID, time.Now()); sc < 2.5 {
		t.Fatalf("abuse charged %.2f, want about 3", sc)
	}

	// A flood of valid requests is answered "busy" beyond the peer's budget.
	busy := 0
	for range 30 {
		resp, err := rawRequest(adv.h, n, frame(&message{Type: msgGetBlocks, IDs: []tangle.ID{blk.ID()}}))
		if err == nil && resp.Type == msgError && resp.Code == errCodeBusy {
			busy++
		}
	}
	if busy == 0 || n.Status().Counters.RequestsRefused == 0 {
		t.Fatalf("no request refused as busy (busy %d)", busy)
	}

	// More offences reach the ban threshold (5): the peer is disconnected and refused.
	for range 3 {
		rawRequest(adv.h, n, append(binary.LittleEndian.AppendUint32(nil, 1), 0x55))
	}
	waitFor(t, convergeTimeout, "abusive peer banned", func() bool {
		return n.gater.isBanned(advID) && !n.isConnected(advID)
	})
	if _, err := rawRequest(adv.h, n, frame(&message{Type: msgGetBlocks, IDs: []tangle.ID{blk.ID()}})); err == nil {
		t.Fatal("banned peer still served")
	} else if errors.Is(err, errWire) {
		t.Fatalf("unexpected wire error: %v", err)
	}
}
