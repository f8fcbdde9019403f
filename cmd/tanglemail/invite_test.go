package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/node"
)

// TestInviteAndJoin: two fresh nodes (loopback, mDNS and DHT off, no bootstrap) say they have no
// peers; "tanglemail join" with the other's "tanglemail invite" connects them and adds the contact.
func TestInviteAndJoin(t *testing.T) {
	old := noPeersGrace
	noPeersGrace = 100 * time.Millisecond
	defer func() { noPeersGrace = old }()
	dirA, dirB := t.TempDir(), t.TempDir()
	_, outA := startNode(t, dirA)
	_, outB := startNode(t, dirB)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(outB.String(), "The node has "+node.NoPeersHint) {
		if time.Now().After(deadline) {
			t.Fatalf("no hint about peers at start:\n%s", outB.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, out, errs := runCLI(t, nil, "status", "--data-dir", dirB); code != 0 || !strings.Contains(out, node.NoPeersHint) {
		t.Fatalf("status without peers: exit %d: %s\n%s", code, errs, out)
	}

	code, out, errs := runCLI(t, nil, "invite", "--data-dir", dirA, "--name", "alice")
	if code != 0 || !strings.Contains(out, "Before you share it: This invite reveals") || !strings.Contains(out, "127.0.0.1") ||
		!strings.Contains(out, "tanglemail join 'tanglemail:invite?v=1&") || !strings.Contains(out, "█") {
		t.Fatalf("invite: exit %d: %s\n%s", code, errs, out)
	}
	code, out, errs = runCLI(t, nil, "invite", "--data-dir", dirA, "--name", "alice", "--json")
	var inv api.Invite
	if code != 0 || json.Unmarshal([]byte(out), &inv) != nil || inv.Invite == "" {
		t.Fatalf("invite --json: exit %d: %s\n%s", code, errs, out)
	}

	// An invite cut at its first & by an unquoting shell gets advice; nothing is dialled.
	cut, _, _ := strings.Cut(inv.Invite, "&")
	if code, _, errs := runCLI(t, nil, "join", "--data-dir", dirB, cut); code != 1 || !strings.Contains(errs, "single quotes") {
		t.Fatalf("join of a cut invite: exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "join", "--data-dir", dirB); code != 2 || !strings.Contains(errs, "tanglemail invite") {
		t.Fatalf("join without an invite: exit %d: %s", code, errs)
	}

	code, out, errs = runCLI(t, nil, "join", "--data-dir", dirB, inv.Invite, "al")
	if code != 0 || !strings.Contains(out, "connected to 1 of ") || !strings.Contains(out, "Added contact al: "+inv.Address) {
		t.Fatalf("join: exit %d: %s\n%s\nA:\n%s", code, errs, out, outA.String())
	}
	code, out, _ = runCLI(t, nil, "contacts", "--data-dir", dirB)
	if code != 0 || !strings.Contains(out, "al  "+inv.Address) {
		t.Fatalf("contacts after join: %s", out)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		code, out, _ = runCLI(t, nil, "status", "--data-dir", dirB)
		if code == 0 && strings.Contains(out, "Peers     1 connected") && !strings.Contains(out, node.NoPeersHint) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after join:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
