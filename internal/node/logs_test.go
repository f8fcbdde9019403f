package node

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/store"
)

// lockedBuffer is a log sink for several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// No address and no message content in the logs at INFO and above (HACKING.md, conventions: no secrets,
// message content or addresses in logs above debug), over a mail's whole way: submission, outbox, gossip, inbox,
// receipt, delivery.
func TestNoAddressesInLogs(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	cfg.Log = log
	alice, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	cfg = testConfig(t, t.TempDir())
	cfg.Log = log
	cfg.Bootstrap = alice.Network().Addrs()
	bob, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	waitFor(t, "peering", 60*time.Second, func() bool {
		return alice.Network().PeerCount() == 1 && bob.Network().PeerCount() == 1
	})

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
