// Package p2ptest is test support for tests that need a libp2p host of their own: a client host
// (p2p.ClientHost) listening on 127.0.0.1, which serves streams as a storage provider or a blob holder
// does in tests. Only tests import it.
package p2ptest

import (
	"context"
	"testing"

	"github.com/tanglemail/tanglemail/internal/p2p"
)

// LoopbackHost starts a client host with a fresh peer id listening on 127.0.0.1 (TCP, a port the
// system chooses), closed when the test ends; its Addrs()[0] is where others dial it.
func LoopbackHost(tb testing.TB) *p2p.ClientHost {
	tb.Helper()
	h, err := p2p.NewClientHost(context.Background(), p2p.WithClientListen("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}
