package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/node"
)

// TestChatBetweenNodes: "tanglemail contacts add" and "tanglemail chat" against two real nodes: what
// alice is typing shows on bob's side as a typing notice, a line typed on one side is printed on the
// other, alice sees her own line once, the answer comes back, and the sender sees it read. Then alice
// creates a group with bob (--new-group), lists its members, renames it and leaves it.
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
	b := startChat(t, nil, "--data-dir", bobDir, aliceAddr)
	b.waitOut(t, "Chat with")

	// Typing without Enter sends typing notices (at most every 3 s); gossip may miss one sent right
	// after peering, so alice types on (dots after the text) until bob sees one, then presses Enter.
	text := "hello bob, from the terminal"
	deadline := time.Now().Add(60 * time.Second)
	typed := 0
	for !strings.Contains(b.out.String(), "is typing…") {
		if time.Now().After(deadline) {
			t.Fatalf("bob's chat never showed alice typing\nbob:\n%s\nalice:\n%s", b.out.String(), a.out.String())
		}
		if typed < len(text) {
			a.typeText(t, text[typed:typed+1])
			typed++
		} else {
			a.typeText(t, ".")
		}
		time.Sleep(300 * time.Millisecond)
	}
	a.typeLine(t, text[typed:])
	// Gossip may miss a block published right after peering; anti-entropy brings it within ~10 s.
	waitOutFor(t, b, "hello bob, from the terminal", 30*time.Second)
	b.typeLine(t, "hi alice")
	waitOutFor(t, a, "hi alice", 30*time.Second)
	waitOutFor(t, a, "✓✓ read", 30*time.Second) // bob's chat marked alice's message read
	if n := strings.Count(a.out.String(), "me: hello bob, from the terminal"); n != 1 {
		t.Fatalf("alice's own line shown %d times, want once:\n%s", n, a.out.String())
	}

	// A group, made and managed from the terminal.
	g := startChat(t, nil, "--data-dir", aliceDir, "--new-group", "lunch", "bob")
	g.waitOut(t, "Group “lunch” with bob.")
	g.typeLine(t, "/members")
	g.waitOut(t, "Members of “lunch”:")
	g.waitOut(t, "  bob      "+bobAddr)
	g.typeLine(t, "/rename crew")
	g.waitOut(t, "the group is now called “crew”")
	g.typeLine(t, "/remove nobody")
	g.waitOut(t, "/remove nobody: no such member")
	g.typeLine(t, "/leave")
	g.waitOut(t, "you are no longer in this group")
	var conv struct{ Conversations []struct{ Kind, Name string } }
	if err := apiCall(t, aliceDir, "/api/conversations", &conv); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range conv.Conversations {
		found = found || (c.Kind == "group" && c.Name == "crew")
	}
	if !found {
		t.Fatalf("alice's node has no group crew: %+v", conv)
	}
	// A 1:1 chat has no members to manage.
	a.typeLine(t, "/members")
	a.waitOut(t, "/members works in a group")
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

// apiCall decodes GET path of the node on dir into out.
func apiCall(t *testing.T, dir, path string, out any) error {
	t.Helper()
	c, err := newAPIClient(&cmdEnv{getenv: func(string) string { return "" }}, dir)
	if err != nil {
		return err
	}
	return c.call(context.Background(), "GET", path, nil, out)
}
