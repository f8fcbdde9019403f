package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/node"
)

// startTestNode starts a loopback devnet node in dir, bootstrapped to peers.
func startTestNode(t *testing.T, dir string, peers ...*node.Node) *node.Node {
	t.Helper()
	cfg := node.DevnetConfig(dir)
	for _, p := range peers {
		cfg.Bootstrap = append(cfg.Bootstrap, p.Network().Addrs()...)
	}
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestChatBetweenNodes: "tanglemail contacts add" and "tanglemail chat" against two real nodes: a
// line typed on one side is printed on the other, the answer comes back, and the sender sees it read.
func TestChatBetweenNodes(t *testing.T) {
	aliceDir, bobDir := t.TempDir(), t.TempDir()
	alice := startTestNode(t, aliceDir)
	bob := startTestNode(t, bobDir, alice)
	waitFor(t, "the nodes to peer", func() bool { return alice.Network().PeerCount() > 0 && bob.Network().PeerCount() > 0 })
	aliceAddr, bobAddr := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()

	var out, errb strings.Builder
	env := &cmdEnv{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, stop: make(chan struct{})}
	if code := run(env, []string{"contacts", "add", "--data-dir", aliceDir, "bob", bobAddr}); code != 0 {
		t.Fatalf("contacts add: exit %d: %s", code, errb.String())
	}
	out.Reset()
	if code := run(env, []string{"contacts", "--data-dir", aliceDir}); code != 0 || !strings.Contains(out.String(), "bob") {
		t.Fatalf("contacts list: exit %d: %q %q", code, out.String(), errb.String())
	}

	a := startChat(t, nil, "--data-dir", aliceDir, "bob")
	a.waitOut(t, "Chat with bob")
	a.typeLine(t, "hello bob, from the terminal")
	b := startChat(t, nil, "--data-dir", bobDir, aliceAddr)
	// Gossip may miss a block published right after peering; anti-entropy brings it within ~10 s.
	waitOutFor(t, b, "hello bob, from the terminal", 30*time.Second)
	b.typeLine(t, "hi alice")
	waitOutFor(t, a, "hi alice", 30*time.Second)
	waitOutFor(t, a, "✓✓ read", 30*time.Second) // bob's chat marked alice's message read
}

// waitOutFor is waitOut with a longer deadline, for delivery across the network.
func waitOutFor(t *testing.T, p *chatProc, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("chat did not print %q within %v\nstdout:\n%s\nstderr:\n%s", s, d, p.out.String(), p.errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
