package outbox

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/testclock"
)

// graceRig is an outbox on a store file that a test can stop and start again (a restart).
type graceRig struct {
	t      *testing.T
	path   string
	rec    *recorder
	id     *identity.Identity
	clk    *testclock.Clock
	st     *store.Store
	o      *Outbox
	cancel context.CancelFunc
	done   chan struct{}
	blobs  BlobSealer // Config.Blobs
}

func newGraceRig(t *testing.T) *graceRig {
	rec := &recorder{}
	rec.peers.Store(1)
	g := &graceRig{t: t, path: filepath.Join(t.TempDir(), "mail.db"), rec: rec, id: testID(t, 1),
		clk: testclock.New(time.Now().Truncate(time.Millisecond))}
	g.start()
	t.Cleanup(g.stop)
	return g
}

func (g *graceRig) start() {
	st, err := store.Open(g.path)
	if err != nil {
		g.t.Fatal(err)
	}
	o, err := New(Config{Store: st, Identity: g.id, Params: tangle.BenchNet, Publisher: g.rec, Tips: g.rec,
		Clock: g.clk.Now, ReceiptDelay: time.Millisecond, Blobs: g.blobs})
	if err != nil {
		g.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.st, g.o, g.cancel, g.done = st, o, cancel, make(chan struct{})
	go func() { o.Run(ctx); close(g.done) }()
}

func (g *graceRig) stop() {
	if g.cancel == nil {
		return
	}
	g.cancel()
	<-g.done
	g.st.Close()
	g.cancel = nil
}

func (g *graceRig) submit(to identity.Address, subject string) (store.OutboxID, store.Appended) {
	return g.submitBody(to, subject, "body\r\n")
}

func (g *graceRig) submitBody(to identity.Address, subject, body string) (store.OutboxID, store.Appended) {
	g.t.Helper()
	raw := []byte("From: <" + g.id.Address().Mail() + ">\r\nTo: <" + to.Mail() + ">\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + subject + "@tangle>\r\n\r\n" + body)
	s, err := g.st.Submit(context.Background(), store.Submission{OutboxNew: store.OutboxNew{
		From: g.id.Address().Mail(), Rcpts: []string{to.Mail()}, Raw: raw, Created: g.clk.Now(), NextAttempt: g.clk.Now()}})
	if err != nil {
		g.t.Fatal(err)
	}
	return s.OutboxID, s.Sent
}

func (g *graceRig) rcpt(id store.OutboxID) store.OutboxRcpt {
	g.t.Helper()
	it, err := g.st.OutboxItem(context.Background(), id)
	if err != nil {
		g.t.Fatal(err)
	}
	return it.Rcpts[0]
}

func (g *graceRig) waitState(id store.OutboxID, want store.RcptState) store.OutboxRcpt {
	g.t.Helper()
	var r store.OutboxRcpt
	defer func() {
		if r.State != want {
			g.t.Logf("recipient %+v", r)
		}
	}()
	waitFor(g.t, "state "+string(want), func() bool {
		g.o.Notify()
		r = g.rcpt(id)
		return r.State == want
	})
	return r
}

// inbox returns the raw messages in INBOX.
func (g *graceRig) inbox() [][]byte {
	g.t.Helper()
	ctx := context.Background()
	mb, err := g.st.MailboxByRole(ctx, store.RoleInbox)
	if err != nil {
		g.t.Fatal(err)
	}
	l, err := g.st.List(ctx, mb.ID, store.ListQuery{})
	if err != nil {
		g.t.Fatal(err)
	}
	var out [][]byte
	for _, m := range l.Messages {
		raw, err := g.st.Raw(ctx, mb.ID, m.UID)
		if err != nil {
			g.t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

func (g *graceRig) delivered(sent store.Appended) bool {
	g.t.Helper()
	m, err := g.st.Message(context.Background(), sent.MailboxID, sent.UID)
	if err != nil {
		g.t.Fatal(err)
	}
	return m.Flags.Has(store.DeliveredKeyword)
}

var mailLife = time.Duration(tangle.BenchNet.DefaultMailTTL) * time.Second

// TestDelayNoticeAtTTL: at the TTL without a receipt the recipient is delayed, not failed, and the
// sender's INBOX gets one delay notice (RFC 3464 Action: delayed, Will-Retry-Until the end of the grace
// period); a receipt in the grace period delivers it, sets $Delivered on the Sent copy, and no failure
// report follows even after the grace period.
func TestDelayNoticeAtTTL(t *testing.T) {
	g := newGraceRig(t)
	bob := testID(t, 2)
	id, sent := g.submit(bob.Address(), "late")
	r := g.waitState(id, store.RcptPublished)
	created := g.clk.Now()

	g.clk.Advance(mailLife - time.Second)
	g.o.Notify()
	waitFor(t, "the last republish before the TTL", func() bool { return g.o.Stats().Republished >= 1 })
	if s := g.rcpt(id).State; s != store.RcptPublished {
		t.Fatalf("a second before the TTL: %s", s)
	}
	g.clk.Advance(time.Second)
	d := g.waitState(id, store.RcptDelayed)
	until := created.Add(mailLife + DefaultDeliveryGrace)
	if !d.NextAttempt.Equal(until) {
		t.Fatalf("delayed until %v, want TTL + grace %v", d.NextAttempt, until)
	}
	in := g.inbox()
	if len(in) != 1 {
		t.Fatalf("INBOX has %d messages, want the delay notice", len(in))
	}
	for _, want := range []string{"Action: delayed", "Status: 4.4.7", "Will-Retry-Until: ", "Subject: Delayed: late",
		"Final-Recipient: rfc822; " + bob.Address().Mail()} {
		if !bytes.Contains(in[0], []byte(want)) {
			t.Errorf("delay notice lacks %q:\n%s", want, in[0])
		}
	}
	if bytes.Contains(in[0], []byte("Action: failed")) {
		t.Error("the delay notice says failed")
	}
	if s := g.o.Stats(); s.Delayed != 1 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	published := len(g.rec.published())

	// Ten days later bob's light client finds the mail at its storage node and answers.
	g.clk.Advance(10 * 24 * time.Hour)
	g.o.Notify()
	if err := g.o.HandleReceipt(context.Background(), bob.Address(), [][32]byte{[32]byte(r.EnvelopeKey)}); err != nil {
		t.Fatal(err)
	}
	if s := g.rcpt(id).State; s != store.RcptDelivered {
		t.Fatalf("receipt in the grace period: %s", s)
	}
	if !g.delivered(sent) {
		t.Fatal("the Sent copy has no $Delivered after the late receipt")
	}
	g.clk.Advance(DefaultDeliveryGrace)
	g.o.Notify()
	time.Sleep(50 * time.Millisecond) // give a wrong failure the chance to show; not synchronization
	if n := len(g.inbox()); n != 1 || g.o.Stats().Failed != 0 {
		t.Fatalf("after the grace period: %d INBOX messages, stats %+v; want only the delay notice", n, g.o.Stats())
	}
	if n := len(g.rec.published()); n != published {
		t.Fatalf("%d blocks published in the grace period", n-published)
	}
}

// TestFailureAfterGrace: without any receipt the final failure report (Action: failed) comes only at the
// end of the grace period, once, and a restart meanwhile keeps the delayed state and files no second
// delay notice.
func TestFailureAfterGrace(t *testing.T) {
	g := newGraceRig(t)
	bob := testID(t, 2)
	id, sent := g.submit(bob.Address(), "never")
	g.waitState(id, store.RcptPublished)
	g.clk.Advance(mailLife)
	g.waitState(id, store.RcptDelayed)

	g.stop() // restart: the state is in the store
	g.start()
	g.clk.Advance(DefaultDeliveryGrace - time.Second)
	g.o.Notify()
	time.Sleep(50 * time.Millisecond) // give an early failure the chance to show; not synchronization
	if r := g.rcpt(id); r.State != store.RcptDelayed {
		t.Fatalf("a second before the end of the grace period: %s", r.State)
	}
	if n := len(g.inbox()); n != 1 {
		t.Fatalf("INBOX has %d messages before the grace period ends, want the one delay notice", n)
	}
	g.clk.Advance(time.Second)
	r := g.waitState(id, store.RcptFailed)
	in := g.inbox()
	if len(in) != 2 {
		t.Fatalf("INBOX has %d messages, want the delay notice and the failure report", len(in))
	}
	for _, want := range []string{"Action: failed", "Status: 5.4.7", "no delivery receipt within 34 days", "Subject: Undelivered: never"} {
		if !bytes.Contains(in[1], []byte(want)) {
			t.Errorf("failure report lacks %q:\n%s", want, in[1])
		}
	}
	if g.delivered(sent) {
		t.Fatal("$Delivered without a receipt")
	}
	// A receipt after the grace period still counts (failed → delivered, as before).
	if err := g.o.HandleReceipt(context.Background(), bob.Address(), [][32]byte{[32]byte(r.EnvelopeKey)}); err != nil {
		t.Fatal(err)
	}
	if !g.delivered(sent) {
		t.Fatal("no $Delivered after a receipt past the grace period")
	}
}

// TestNeverPublishedFailsAtTTL: a recipient that was never published (no peers the whole lifetime)
// fails at the TTL, with no delay notice: no block can reach the recipient.
func TestNeverPublishedFailsAtTTL(t *testing.T) {
	g := newGraceRig(t)
	g.rec.peers.Store(0)
	bob := testID(t, 2)
	id, _ := g.submit(bob.Address(), "offline")
	g.clk.Advance(mailLife)
	g.waitState(id, store.RcptFailed)
	if in := g.inbox(); len(in) != 1 || !bytes.Contains(in[0], []byte("Action: failed")) {
		t.Fatalf("INBOX: %d messages, want one failure report", len(in))
	}
	if s := g.o.Stats(); s.Delayed != 0 {
		t.Fatalf("stats %+v", s)
	}
}
