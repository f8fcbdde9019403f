package node

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/smtptest"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/storetest"
)

// startPair starts alice and bob, peered, and waits until both see each other.
func startPair(t *testing.T) (alice, bob *Node) {
	t.Helper()
	a := startNode(t, testConfig(t, t.TempDir()))
	cfg := testConfig(t, t.TempDir())
	cfg.Bootstrap = a.Network().Addrs()
	b := startNode(t, cfg)
	waitFor(t, "peering", 10*time.Second, func() bool {
		return a.Network().PeerCount() == 1 && b.Network().PeerCount() == 1
	})
	return a, b
}

// submit sends raw from n's own address to rcpts through n's SMTP submission port, as a mail client
// that has accepted the node's self-signed certificate would: STARTTLS, AUTH PLAIN with the generated
// password.
func submit(t *testing.T, n *Node, rcpts []string, raw string) {
	t.Helper()
	addr := n.Identity().Address().Mail()
	smtptest.Submit(t, n.SMTPAddr(), filepath.Join(n.cfg.DataDir, CertFile), addr, n.Password(), rcpts, raw)
}

func inboxMessages(t *testing.T, n *Node, role store.Role) [][]byte {
	t.Helper()
	var out [][]byte
	for _, m := range storetest.Mailbox(t, n.Mailboxes(), role) {
		out = append(out, m.Raw)
	}
	return out
}

// Mail submitted to alice's SMTP port arrives in bob's INBOX exactly as written (Bcc removed), a copy is
// in alice's Sent, and bob's node's automatic receipt marks alice's outbox recipient delivered.
func TestMailBetweenNodes(t *testing.T) {
	alice, bob := startPair(t)
	bobAddr := bob.Identity().Address().Mail()
	raw := "From: Alice <" + alice.Identity().Address().Mail() + ">\r\n" +
		"To: Bob <" + bobAddr + ">\r\n" +
		"Subject: first light\r\n" +
		"Message-ID: <first-light@tangle>\r\n" +
		"Date: Tue, 24 Nov 2026 12:00:00 +0000\r\n" +
		"\r\n" +
		"Hello Bob, this went over the tangle.\r\n"
	submit(t, alice, []string{bobAddr}, raw)

	waitFor(t, "the mail in bob's INBOX", 30*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 1
	})
	got := inboxMessages(t, bob, store.RoleInbox)[0]
	if !bytes.Equal(got, []byte(raw)) {
		t.Fatalf("bob got\n%q\nwant\n%q", got, raw)
	}
	if sent := inboxMessages(t, alice, store.RoleSent); len(sent) != 1 || !strings.Contains(string(sent[0]), "first light") {
		t.Fatalf("alice's Sent: %d messages", len(sent))
	}
	waitFor(t, "the delivery receipt at alice", 30*time.Second, func() bool {
		items, err := alice.Mailboxes().OutboxItems(context.Background())
		if err != nil || len(items) != 1 || len(items[0].Rcpts) != 1 {
			return false
		}
		return items[0].Rcpts[0].State == store.RcptDelivered
	})
	// The node's status reports the delivery (what `tanglemail status` prints).
	if st := alice.Status(); st.Outbox.Stats.Delivered != 1 || st.Outbox.Stats.Published < 1 {
		t.Fatalf("alice's status: outbox %+v", st.Outbox.Stats)
	}
	// Alice's mail client sees the receipt: the Sent copy carries $Delivered.
	waitFor(t, "$Delivered on alice's Sent copy", 10*time.Second, func() bool {
		mb, err := alice.Mailboxes().MailboxByRole(context.Background(), store.RoleSent)
		if err != nil {
			t.Fatal(err)
		}
		l, err := alice.Mailboxes().List(context.Background(), mb.ID, store.ListQuery{})
		return err == nil && len(l.Messages) == 1 && l.Messages[0].Flags.Has("$delivered")
	})
	// Nothing came back to alice's INBOX (no bounce), and bob got exactly one copy.
	if n := len(inboxMessages(t, alice, store.RoleInbox)); n != 0 {
		t.Fatalf("alice's INBOX has %d messages", n)
	}
	if n := len(inboxMessages(t, bob, store.RoleInbox)); n != 1 {
		t.Fatalf("bob's INBOX has %d messages", n)
	}
}

// A restarted node files mail that reached its block store but not its inbox (rescan at start).
func TestRescanAtStart(t *testing.T) {
	alice, bob := startPair(t)
	bobDir := bob.cfg.DataDir
	bobAddr := bob.Identity().Address().Mail()
	// Stop bob's inbox from filing: unregister it, so blocks are stored but not opened.
	bob.unregister()
	submit(t, alice, []string{bobAddr}, "Subject: stored only\r\n\r\nbody\r\n")
	waitFor(t, "the block in bob's store", 30*time.Second, func() bool {
		st, err := bob.Blocks().Stats()
		return err == nil && st.Blocks >= 1
	})
	if n := len(inboxMessages(t, bob, store.RoleInbox)); n != 0 {
		t.Fatalf("bob filed %d messages without an inbox", n)
	}
	bob.unregister = nil
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, bobDir)
	bob2, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	waitFor(t, "the rescanned mail in bob's INBOX", 30*time.Second, func() bool {
		return len(inboxMessages(t, bob2, store.RoleInbox)) == 1
	})
}
