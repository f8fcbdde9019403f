// Package nodetest is test support for tests that run whole nodes (package node) from outside the
// package: the end-to-end tests with real mail clients and the browser tests. Only tests import it.
package nodetest

import (
	"context"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/node"
)

// StartDevnet starts one node of the development network per name on 127.0.0.1 (mDNS and the DHT off,
// real proof of work at DevNet's difficulty), each in a fresh data directory and bootstrapping from all
// earlier ones, and waits until every node is peered with every other. The nodes are closed when the
// test ends (an error closing one fails it). It returns the nodes and their data directories.
func StartDevnet(t testing.TB, names ...string) ([]*node.Node, []string) {
	t.Helper()
	dirs := make([]string, len(names))
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	ns, err := node.StartDevnet(context.Background(), dirs, node.DevnetOptions{PeerTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range ns {
		t.Cleanup(func() {
			if err := n.Close(); err != nil {
				t.Errorf("close %s: %v", names[i], err)
			}
		})
	}
	return ns, dirs
}
