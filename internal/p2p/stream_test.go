package p2p

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestServiceStreams: a service protocol registered with HandleStream is reached from a ClientHost and
// from another Node; every ClientHost has a fresh peer id; a light client is not counted as a peer.
func TestServiceStreams(t *testing.T) {
	params := tangle.BenchNet
	a := startNode(t, params, newMemStore(params), tcpOnly)
	b := startNode(t, params, newMemStore(params), tcpOnly)
	proto := ProtocolPrefix(params.ID) + "/echo/1"
	if proto != "/tanglemail/"+params.ID.String()+"/echo/1" {
		t.Fatalf("protocol %s", proto)
	}
	seen := make(chan string, 4)
	a.HandleStream(proto, func(s Stream) {
		defer s.Close()
		seen <- s.RemoteAddr()
		if s.LocalPeer().String() != a.ID() {
			t.Errorf("local peer %s", s.LocalPeer())
		}
		_, _ = io.Copy(s, s)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	echo := func(open func() (Stream, error)) {
		t.Helper()
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if err := s.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(s)
		if err != nil || string(got) != "ping" {
			t.Fatalf("echo %q %v", got, err)
		}
		select {
		case addr := <-seen:
			if addr == "" {
				t.Fatal("no remote address")
			}
		case <-ctx.Done():
			t.Fatal("handler not called")
		}
	}
	c1, err := NewClientHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := NewClientHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c1.ID() == c2.ID() || c1.ID().String() == a.ID() {
		t.Fatal("client hosts share a peer id")
	}
	pid, err := c1.ConnectAddr(ctx, a.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	echo(func() (Stream, error) { return c1.OpenStream(ctx, pid, proto) })
	connect(t, b, a)
	echo(func() (Stream, error) { return b.OpenStream(ctx, pid, proto) })
	// After identify, the light client is not a gossip peer: a counts b only.
	waitFor(t, 30*time.Second, "peer count without the light client", func() bool {
		return a.PeerCount() == 1 && !a.isConnected(c1.ID())
	})
	a.mu.Lock()
	_, remembered := a.peerTable[c1.ID()]
	a.mu.Unlock()
	if remembered {
		t.Fatal("the light client is in the peer table")
	}
	if _, err := c1.OpenStream(ctx, pid, proto+"x"); err == nil {
		t.Fatal("stream to an unknown protocol opened")
	}
}
