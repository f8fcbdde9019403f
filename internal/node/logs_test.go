package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// No address and no message content in the logs at INFO and above (HACKING.md, conventions: no secrets,
// message content or addresses in logs above debug), over a mail's whole way: submission, outbox, gossip, inbox,
// receipt, delivery.
func TestNoAddressesInLogs(t *testing.T) {
	logs, alice, bob := startLoggedPair(t)
	ctx := context.Background()

	bobAddr := bob.Identity().Address().Mail()
	raw := "From: <" + alice.Identity().Address().Mail() + ">\r\nTo: <" + bobAddr + ">\r\n" +
		"Subject: secret subject\r\nMessage-ID: <logs@tangle>\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\n\r\n" +
		"secret body\r\n"
	submit(t, alice, []string{bobAddr}, raw)
	waitFor(t, "the delivery receipt at alice", 90*time.Second, func() bool {
		items, err := alice.Mailboxes().OutboxItems(ctx)
		return err == nil && len(items) == 1 && len(items[0].Rcpts) == 1 && items[0].Rcpts[0].State == store.RcptDelivered
	})
	// The log line may follow the state change it reports: wait for it rather than read at once.
	waitFor(t, "the INFO log lines of the mail's way", 30*time.Second, func() bool {
		out := logs.String()
		return strings.Contains(out, "inbox: filed") && strings.Contains(out, "outbox: delivered")
	})
	out := logs.String()
	for _, secret := range []string{
		alice.Identity().Address().String(), bob.Identity().Address().String(),
		identity.MailDomain + ">", "secret subject", "secret body",
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the INFO log contains %q:\n%s", secret, out)
		}
	}
}

// A normal stop (what SIGTERM does) logs no WARN or ERROR line, even with work under way: mail being
// ground and published, filed and acknowledged with a receipt when Close comes. Cancellation by Close is
// not a failure.
func TestCloseLogsNoWarnings(t *testing.T) {
	logs, alice, bob := startLoggedPair(t)
	from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
	submit(t, alice, []string{to}, mailOf(from, to, "first", 4096))
	waitFor(t, "the first mail filed at bob", 90*time.Second, func() bool {
		return strings.Contains(logs.String(), "inbox: filed")
	})
	// More mail, so that grinding, publishing, filing and receipts are under way when the nodes stop.
	for i := range 3 {
		submit(t, alice, []string{to}, mailOf(from, to, fmt.Sprint("more", i), 4096))
	}
	if err := alice.Close(); err != nil {
		t.Errorf("alice: Close: %v", err)
	}
	if err := bob.Close(); err != nil {
		t.Errorf("bob: Close: %v", err)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("logged on a normal stop: %s", line)
		}
	}
}

// startLoggedPair starts alice and bob, peered, both logging at INFO into the returned buffer.
func startLoggedPair(t *testing.T) (*testwait.Buffer, *Node, *Node) {
	t.Helper()
	logs := &testwait.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := testConfig(t, t.TempDir())
	cfg.Log = log
	alice, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	cfg = testConfig(t, t.TempDir())
	cfg.Log = log
	cfg.Bootstrap = alice.Network().Addrs()
	bob, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	waitFor(t, "peering", 60*time.Second, func() bool {
		return alice.Network().PeerCount() == 1 && bob.Network().PeerCount() == 1
	})
	return logs, alice, bob
}
