package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/store"
)

// swaksArgs are the arguments of a swaks submission to n: STARTTLS verifying the node's certificate,
// AUTH PLAIN with the user's address and the node's password.
func swaksArgs(t *testing.T, n *testNode, args ...string) []string {
	host, port := n.smtpHostPort(t)
	return append([]string{
		"--server", host, "--port", port, "--ehlo", "e2e.test", "--timeout", "30",
		"--tls", "--tls-verify", "--tls-ca-path", n.certFile(),
		"--auth", "PLAIN", "--auth-user", n.addr, "--auth-password", n.Password(),
		"--from", n.addr, // swaks also writes it as the From header
	}, args...)
}

// Alice's mail client (swaks) submits to her node over STARTTLS with AUTH PLAIN; the mail crosses the
// tangle to bob's INBOX, lands in alice's Sent, and bob's node's automatic receipt marks alice's
// outbox recipient delivered.
func TestSwaksSubmission(t *testing.T) {
	swaks := needClient(t, "swaks", "swaks")
	nodes := startNodes(t, "alice", "bob")
	alice, bob := nodes[0], nodes[1]

	const subject = "swaks over the tangle"
	const body = "Hello Bob, swaks sent this through alice's node."
	out, err := newClient(t).run("", swaks, swaksArgs(t, alice,
		"--to", bob.addr,
		"--header", "Subject: "+subject,
		"--header", "To: <"+bob.addr+">",
		"--body", body)...)
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	for _, want := range []string{"STARTTLS", "235 ", "250 2.0.0 OK: queued as"} {
		if !strings.Contains(out, want) {
			t.Errorf("swaks transcript lacks %q:\n%s", want, out)
		}
	}

	got := waitForSubject(t, bob, store.RoleInbox, subject, 30*time.Second)
	if !strings.Contains(string(got.Raw), body) {
		t.Errorf("bob's copy lacks the body:\n%s", got.Raw)
	}
	if from := headerValue(got.Raw, "From"); !strings.Contains(from, alice.addr) {
		t.Errorf("bob's copy is From %q, want alice's address", from)
	}
	if _, ok := findSubject(mailbox(t, alice, store.RoleSent), subject); !ok {
		t.Error("no copy in alice's Sent")
	}
	waitDelivered(t, alice, subject, 30*time.Second)
}

// A recipient that is not a tangle address, and one that looks like one but has a bad checksum, are
// refused at RCPT TO with 550 5.1.1 and the reason, which the client shows the user.
func TestSwaksBadAddress(t *testing.T) {
	swaks := needClient(t, "swaks", "swaks")
	alice := startNodes(t, "alice")[0]

	// Flip the last character of a real address: bech32m detects every single substitution.
	good := strings.TrimSuffix(alice.addr, "@tangle")
	last := good[len(good)-1]
	repl := byte('q')
	if last == 'q' {
		repl = 'p'
	}
	badChecksum := good[:len(good)-1] + string(repl) + "@tangle"

	for _, tc := range []struct {
		rcpt string
		want []string
	}{
		{"someone@example.org", []string{"550 5.1.1", "someone@example.org is not a tangle address", "delivers only to <address>@tangle"}},
		{badChecksum, []string{"550 5.1.1", badChecksum + " is not a valid tangle address", "bad address checksum"}},
	} {
		out, err := newClient(t).run("", swaks, swaksArgs(t, alice,
			"--to", tc.rcpt, "--header", "Subject: nowhere", "--body", "this goes nowhere")...)
		if err == nil {
			t.Errorf("swaks to %s succeeded:\n%s", tc.rcpt, out)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(out, want) {
				t.Errorf("swaks to %s: transcript lacks %q:\n%s", tc.rcpt, want, out)
			}
		}
	}
	items, err := alice.Mailboxes().OutboxItems(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 || len(mailbox(t, alice, store.RoleSent)) != 0 {
		t.Errorf("refused mail was queued: %d outbox items", len(items))
	}
}
