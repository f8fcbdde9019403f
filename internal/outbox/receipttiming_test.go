package outbox

import (
	"context"
	"crypto/rand"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// fakeReceiptClock is an injected ReceiptClock: time moves only by Advance, which fires the timers
// that fall due.
type fakeReceiptClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeTimer
	armed   chan struct{} // a send per After call
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeReceiptClock() *fakeReceiptClock {
	return &fakeReceiptClock{now: time.Unix(1_800_000_000, 0), armed: make(chan struct{}, 1000)}
}

func (c *fakeReceiptClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeReceiptClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, fakeTimer{c.now.Add(d), ch})
	}
	select {
	case c.armed <- struct{}{}:
	default:
	}
	return ch
}

func (c *fakeReceiptClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// waitArmed waits until the receipt loop has set a timer (so that it is waiting, not working).
func (c *fakeReceiptClock) waitArmed(t *testing.T) {
	t.Helper()
	select {
	case <-c.armed:
	case <-time.After(30 * time.Second):
		t.Fatal("the receipt loop set no timer")
	}
}

// constReader is a Rand of constant bytes: u ≈ 0.502 for the receipt delay.
type constReader byte

func (r constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func startTimedOutbox(t *testing.T, rec *recorder, id *identity.Identity, clk *fakeReceiptClock, rnd io.Reader) *Outbox {
	t.Helper()
	return startOutboxWith(t, Config{Identity: id, Publisher: rec, Tips: rec,
		ReceiptDelayMean: time.Minute, ReceiptClock: clk, Rand: rnd})
}

// A receipt waits the batching window plus a random delay, on the injected clock, and is then sent;
// keys that arrive meanwhile go in the same receipt.
func TestReceiptRandomDelay(t *testing.T) {
	rec := &recorder{}
	rec.peers.Store(1)
	clk := newFakeReceiptClock()
	bob, alice := testID(t, 2), testID(t, 1)
	o := startTimedOutbox(t, rec, bob, clk, constReader(0x80))
	mailTTL := tangle.BenchNet.DefaultMailTTL
	o.SendReceipt(bob, alice.Address(), [][32]byte{{1}}, mailTTL)
	clk.waitArmed(t)

	// Mean: min(1 min, 15 min / 16) = 56.25 s; u ≈ 0.502 gives ≈ 0.675 of it, ≈ 38 s.
	mean := o.receiptDelayMean(mailTTL)
	if mean != 15*time.Minute/16 {
		t.Fatalf("mean %v", mean)
	}
	due := o.nextReceiptDue().Sub(clk.Now())
	if lo, hi := defaultReceiptDelay+mean*6/10, defaultReceiptDelay+mean*7/10; due < lo || due > hi {
		t.Fatalf("receipt due in %v, want %v…%v", due, lo, hi)
	}
	clk.Advance(due - time.Second)
	o.SendReceipt(bob, alice.Address(), [][32]byte{{2}}, mailTTL) // joins the batch, keeps its time
	clk.waitArmed(t)
	if n := len(rec.published()); n != 0 {
		t.Fatalf("%d blocks published a second before the receipt was due", n)
	}
	clk.Advance(time.Second)
	waitFor(t, "the receipt", func() bool { return o.Stats().ReceiptsSent == 1 })
	if got := openReceipts(t, rec, alice, bob.Address()); len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("receipts %v, want one with both keys", got)
	}
	if b := rec.published()[0]; b.TTL != mailTTL {
		t.Fatalf("receipt TTL %d, want the mail's %d", b.TTL, mailTTL)
	}
}

// A chat receipt to a peer this node has just sent chat to skips the random delay (an open
// conversation); one to another peer does not.
func TestChatReceiptInOpenConversation(t *testing.T) {
	rec := &recorder{}
	rec.peers.Store(1)
	clk := newFakeReceiptClock()
	bob, alice, carol := testID(t, 2), testID(t, 1), testID(t, 3)
	o := startTimedOutbox(t, rec, bob, clk, constReader(0x80))
	if err := o.SendNote(context.Background(), alice.Address(), []byte("typing"), tangle.MinTTL); err != nil {
		t.Fatal(err)
	}
	chatTTL := tangle.BenchNet.DefaultChatTTL
	o.SendReceipt(bob, alice.Address(), [][32]byte{{1}}, chatTTL)
	o.SendReceipt(bob, carol.Address(), [][32]byte{{2}}, chatTTL)
	clk.waitArmed(t)
	o.rmu.Lock()
	toAlice := o.receipts[receiptKey{bob.Address().String(), alice.Address().String()}].due.Sub(clk.Now())
	toCarol := o.receipts[receiptKey{bob.Address().String(), carol.Address().String()}].due.Sub(clk.Now())
	o.rmu.Unlock()
	if toAlice != defaultReceiptDelay {
		t.Fatalf("receipt in an open conversation due in %v, want the batching window %v", toAlice, defaultReceiptDelay)
	}
	// Chat's republish interval is TTL/8 = 7.5 min: mean 28.125 s.
	if mean := o.receiptDelayMean(chatTTL); mean != 7*time.Minute/16+30*time.Second/16 {
		t.Fatalf("chat mean %v", mean)
	}
	if toCarol < 10*time.Second {
		t.Fatalf("receipt outside a conversation due in %v, want the random delay", toCarol)
	}
	// After openConversation the conversation is closed again.
	clk.Advance(openConversation)
	waitFor(t, "both receipts", func() bool { return o.Stats().ReceiptsSent == 2 })
	o.SendReceipt(bob, alice.Address(), [][32]byte{{3}}, chatTTL)
	if d := o.nextReceiptDue().Sub(clk.Now()); d < 10*time.Second {
		t.Fatalf("receipt after the conversation closed due in %v", d)
	}
}

// The random delay's distribution: exponential truncated at four means, never beyond a quarter of the
// republish interval, with the mean and median the formulas give.
func TestReceiptDelayDistribution(t *testing.T) {
	o := &Outbox{retry: defaultRetryInterval, rmean: time.Minute, rnd: rand.Reader, params: tangle.MainNet}
	for _, ttl := range []uint32{tangle.MainNet.DefaultMailTTL, tangle.MainNet.DefaultChatTTL} {
		mean := o.receiptDelayMean(ttl)
		const n = 100_000
		var sum float64
		below := 0
		for range n {
			d := o.randomReceiptDelay(ttl)
			if d < 0 || d > 4*mean || d > o.retryDelay(ttl, 1)/4 {
				t.Fatalf("TTL %d: delay %v outside [0, %v]", ttl, d, 4*mean)
			}
			sum += d.Seconds()
			if d < mean {
				below++
			}
		}
		a := float64(receiptDelayBound)
		wantMean := mean.Seconds() * (1 - (1+a)*math.Exp(-a)) / (1 - math.Exp(-a))
		wantBelow := (1 - math.Exp(-1)) / (1 - math.Exp(-a))
		if got := sum / n; math.Abs(got-wantMean) > 0.02*wantMean {
			t.Errorf("TTL %d: mean %.2f s, want %.2f s", ttl, got, wantMean)
		}
		if got := float64(below) / n; math.Abs(got-wantBelow) > 0.01 {
			t.Errorf("TTL %d: P(d < mean) %.3f, want %.3f", ttl, got, wantBelow)
		}
	}
}

// BenchmarkReceiptLinkability measures how well a relay links a mail to its receipt by timing. The
// relay sees a mail block at t₀ and takes the first receipt-like block after it (same TTL class and
// bucket) as its receipt: with a delay density that falls with time (exponential), that guess is the
// most likely one. Other receipts arrive as a Poisson stream of rate λ, so the guess is right with
// probability E[e^(−λD)], D the receipt's delay; the figures average that over the delays the outbox
// draws (after), against the fixed ≈ 190 ms measured before (100 ms batching + grinding and gossip).
// Reported per λ (receipts per second the relay sees in the class): p_link (the chance the guess is
// right) and candidates (expected receipts in the window, λ·E[D] + 1).
func BenchmarkReceiptLinkability(b *testing.B) {
	o := &Outbox{retry: defaultRetryInterval, rmean: time.Minute, rdelay: defaultReceiptDelay, rnd: rand.Reader, params: tangle.MainNet}
	const before = 190 * time.Millisecond
	const n = 200_000
	for range b.N {
		ds := make([]float64, n)
		var sum float64
		for i := range ds {
			ds[i] = (defaultReceiptDelay + o.randomReceiptDelay(tangle.MainNet.DefaultMailTTL)).Seconds()
			sum += ds[i]
		}
		slices.Sort(ds)
		b.ReportMetric(sum/n, "mean_s")
		b.ReportMetric(ds[n/2], "p50_s")
		b.ReportMetric(ds[n*99/100], "p99_s")
		b.ReportMetric(ds[n-1], "max_s")
		for _, lambda := range []float64{0.1, 1, 10} {
			var p float64
			for _, d := range ds {
				p += math.Exp(-lambda * d)
			}
			name := strconv.FormatFloat(lambda, 'g', -1, 64)
			b.ReportMetric(math.Exp(-lambda*before.Seconds()), "p_link_before_lambda"+name)
			b.ReportMetric(p/n, "p_link_after_lambda"+name)
			b.ReportMetric(lambda*sum/n+1, "candidates_after_lambda"+name)
		}
	}
}
