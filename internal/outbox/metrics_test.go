package outbox

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/store"
)

// panics reads tanglemail_panics_total{loop=loop} from the outbox's collectors, as a scrape would.
func panics(t *testing.T, o *Outbox, loop string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(o.Collectors()...)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "tanglemail_panics_total" {
			continue
		}
		for _, m := range f.Metric {
			if m.Label[0].GetValue() == loop {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no tanglemail_panics_total{loop=%q}", loop)
	return 0
}

// TestLoopPanicsRecovered: a panic in the queue loop (here in Publish) and in the receipt loop is
// recovered and counted, the loops go on, and the mail that was being sent when it panicked is sent.
func TestLoopPanicsRecovered(t *testing.T) {
	rec := &recorder{}
	rec.peers.Store(1)
	rec.panic.Store(1)
	alice, bob := testID(t, 1), testID(t, 2)
	o := startOutbox(t, rec, alice)
	ctx := context.Background()
	_, err := o.st.Submit(ctx, store.Submission{OutboxNew: store.OutboxNew{From: alice.Address().Mail(),
		Rcpts: []string{bob.Address().Mail()}, Raw: []byte("From: x\r\nSubject: panic\r\n\r\nbody\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the mail to be published after the panic", func() bool { return o.Stats().Published >= 1 })
	if n := panics(t, o, "outbox"); n != 1 {
		t.Fatalf("panics_total{loop=outbox} = %v, want 1", n)
	}

	rec.panic.Store(1)
	o.SendReceipt(bob, alice.Address(), [][32]byte{{1}}, 60) // its publish panics: the receipt is lost
	waitFor(t, "the receipt loop's panic", func() bool { return rec.panic.Load() == 0 })
	waitFor(t, "the panic to be counted", func() bool { return panics(t, o, "outbox_receipts") == 1 })
	o.SendReceipt(bob, alice.Address(), [][32]byte{{2}}, 60)
	waitFor(t, "a receipt after the restart", func() bool { return o.Stats().ReceiptsSent >= 1 })
}
