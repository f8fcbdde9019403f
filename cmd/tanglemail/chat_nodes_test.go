package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/node"
)

// TestChatBetweenNodes: "tanglemail contacts add" and "tanglemail chat" against two real nodes: a
// line typed on one side is printed on the other, the answer comes back, and the sender sees it read.
func TestChatBetweenNodes(t *testing.T) {
	aliceDir, bobDir := t.TempDir(), t.TempDir()
	nodes, err := node.StartDevnet(context.Background(), []string{aliceDir, bobDir}, node.DevnetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		t.Cleanup(func() { n.Close() })
	}
	alice, bob := nodes[0], nodes[1]
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
