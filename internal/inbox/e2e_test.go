package inbox_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/chat"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/inbox"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/storetest"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

const wait = 60 * time.Second // generous deadline for one delivery; tests normally finish far sooner

// TestDeliverDevNet sends alice → bob on the devnet, with real proof of work: bob's INBOX gets the exact
// bytes once, with the verified sender, and alice's recipient becomes delivered by bob's automatic
// receipt. Progress is reported while the PoW runs.
func TestDeliverDevNet(t *testing.T) {
	net, clk, dir := newNetwork(tangle.DevNet), newClock(), t.TempDir()
	var mu sync.Mutex
	var jobs []outbox.Job
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir, func(o *outbox.Config, _ *inbox.Config) {
		o.OnProgress = func(j outbox.Job) {
			mu.Lock()
			jobs = append(jobs, j)
			mu.Unlock()
		}
	})
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 0), dir)

	raw := mailFrom(alice.id, bob.id, "devnet", strings.Repeat("Hello over the tangle.\r\n", 40))
	id := alice.submit(t, raw, bob.id.Address().Mail())
	r := alice.waitState(t, id, bob.id.Address().Mail(), store.RcptDelivered, wait)
	if len(r.EnvelopeKey) != 32 || len(r.BlockIDs) != 1 || r.ReceiptAt.IsZero() {
		t.Fatalf("delivered recipient: key %d bytes, %d blocks, receipt at %v", len(r.EnvelopeKey), len(r.BlockIDs), r.ReceiptAt)
	}
	raws, msgs := bob.mailbox(t, store.RoleInbox)
	if len(raws) != 1 || !bytes.Equal(raws[0], raw) {
		t.Fatalf("bob's INBOX: %d messages, want exactly the submitted bytes", len(raws))
	}
	if m := msgs[0].Meta; m.SenderVerified != alice.id.Address().Mail() || !m.ViaTangle {
		t.Fatalf("meta = %+v", m)
	}
	if seen, _ := bob.st.SeenReplayKey(testCtx(t), store.ReplayKey(r.EnvelopeKey)); !seen {
		t.Fatal("bob has not recorded the envelope's replay key")
	}
	// The block on the network carries alice's stored envelope, with valid PoW, in bob's route.
	var found bool
	for _, b := range net.published() {
		if b.ID() == tangle.ID(r.BlockIDs[0]) {
			found = true
			if !bob.id.MatchTag(b.Tag) || !bytes.Equal(b.Payload[:32], r.EnvelopeKey) {
				t.Fatal("published block does not carry the envelope to bob")
			}
			if b.TTL != tangle.DevNet.DefaultMailTTL {
				t.Fatalf("TTL %d", b.TTL)
			}
		}
	}
	if !found {
		t.Fatal("the recorded block was not published")
	}
	mu.Lock()
	defer mu.Unlock()
	var started, finished bool
	for _, j := range jobs {
		if j.OutboxID == id && j.Kind == seal.KindMail {
			started = started || (!j.Finished && j.Expected > 0)
			finished = finished || j.Finished
		}
	}
	if !started || !finished {
		t.Fatalf("progress: started %v finished %v over %d reports", started, finished, len(jobs))
	}
	if p := alice.out.Progress(); len(p.Jobs) != 0 {
		t.Fatalf("jobs still running: %+v", p.Jobs)
	}
	if s := bob.out.Stats(); s.ReceiptsSent == 0 || s.ReceiptKeysSent == 0 {
		t.Fatalf("bob's outbox stats %+v", s)
	}
}

// TestDuplicatesFiledOnceButReceipted hands bob the same envelope again — the same block, a new block
// carrying the same payload, and after a restart of bob's node — and checks it is filed once while every
// copy triggers a receipt.
func TestDuplicatesFiledOnceButReceipted(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	raw := mailFrom(alice.id, bob.id, "dup", "once only\r\n")
	id := alice.submit(t, raw, bob.id.Address().Mail())
	r := alice.waitState(t, id, bob.id.Address().Mail(), store.RcptDelivered, wait)
	blk := findBlock(t, net, r.BlockIDs[0])

	ctx := testCtx(t)
	before := bob.in.Stats().ReceiptsOut
	if got := bob.in.Process(ctx, blk); got != inbox.Duplicate {
		t.Fatalf("same block again: %v", got)
	}
	// Another block (new parents, new time, new tag) carrying the same envelope.
	h := blk.Header()
	h.Time++
	h.Tag = bob.id.Address().MakeTag(nil)
	blk2, err := tangle.BenchNet.Build(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if got := bob.in.Process(ctx, blk2); got != inbox.Duplicate {
		t.Fatalf("new block, same envelope: %v", got)
	}
	if got := bob.in.Stats().ReceiptsOut - before; got != 2 {
		t.Fatalf("duplicates queued %d receipts, want 2", got)
	}
	// Bob restarts: the replay key is in his store.
	bob.close()
	bob = startNode(t, net, clk, "bob", bob.id, dir)
	if got := bob.in.Process(ctx, blk); got != inbox.Duplicate {
		t.Fatalf("after restart: %v", got)
	}
	waitFor(t, wait, "bob's receipt after restart", func() bool { return bob.out.Stats().ReceiptKeysSent >= 1 })
	if raws, _ := bob.mailbox(t, store.RoleInbox); len(raws) != 1 {
		t.Fatalf("bob's INBOX has %d messages, want 1", len(raws))
	}
}

// TestNotForUs: a block to bob is trial-opened by carol (no tag bits: she opens everything) and
// ignored; dave, whose tag bits differ, does not even open it.
func TestNotForUs(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 16), dir)
	carol := startNode(t, net, clk, "carol", newIdentity(t, 3, 0), dir)
	dave := startNode(t, net, clk, "dave", differentTag(t, bob.id), dir)
	net.detach(carol.in) // they see only what the test hands them
	net.detach(dave.in)
	id := alice.submit(t, mailFrom(alice.id, bob.id, "private", "for bob\r\n"), bob.id.Address().Mail())
	r := alice.waitState(t, id, bob.id.Address().Mail(), store.RcptDelivered, wait)
	blk := findBlock(t, net, r.BlockIDs[0])
	ctx := testCtx(t)
	if got := carol.in.Process(ctx, blk); got != inbox.NotForUs {
		t.Fatalf("carol: %v", got)
	}
	if got := dave.in.Process(ctx, blk); got != inbox.NotForUs {
		t.Fatalf("dave: %v", got)
	}
	if s := carol.in.Stats(); s.NotForUs == 0 || s.Opened != 0 {
		t.Fatalf("carol's stats %+v: want trial-opens that failed, none opened", s)
	}
	if s := dave.in.Stats(); s.TagMatches != 0 {
		t.Fatalf("dave trial-opened %d blocks despite the tag", s.TagMatches)
	}
	for _, nd := range []*node{carol, dave} {
		if raws, _ := nd.mailbox(t, store.RoleInbox); len(raws) != 0 {
			t.Fatalf("%s filed %d messages", nd.name, len(raws))
		}
	}
}

// differentTag returns an identity with 16 tag bits whose tag key differs from id's in its first 16
// bits.
func differentTag(t *testing.T, id *identity.Identity) *identity.Identity {
	for seed := byte(100); ; seed++ {
		d := newIdentity(t, seed, 16)
		a, b := d.TagKey(), id.TagKey()
		if a[0] != b[0] || a[1] != b[1] {
			return d
		}
	}
}

func findBlock(t *testing.T, net *network, id [32]byte) *tangle.Block {
	t.Helper()
	for _, b := range net.published() {
		if b.ID() == tangle.ID(id) {
			return b
		}
	}
	t.Fatalf("block %x not published", id[:4])
	return nil
}

// TestNoPeers: without peers the recipient stays pending and nothing is published; when peers come,
// it is delivered.
func TestNoPeers(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	net.peers.Store(0)
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	id := alice.submit(t, mailFrom(alice.id, bob.id, "offline", "wait for it\r\n"), bob.id.Address().Mail())
	waitFor(t, wait, "alice to wait for peers", func() bool { return alice.out.Progress().WaitingForPeers })
	if r := alice.rcpt(t, id, bob.id.Address().Mail()); r.State != store.RcptPending {
		t.Fatalf("state %s, want pending", r.State)
	}
	if n := len(net.published()); n != 0 {
		t.Fatalf("%d blocks published without peers", n)
	}
	net.peers.Store(2)
	alice.out.Notify()
	alice.waitState(t, id, bob.id.Address().Mail(), store.RcptDelivered, wait)
	if raws, _ := bob.mailbox(t, store.RoleInbox); len(raws) != 1 {
		t.Fatalf("bob has %d messages", len(raws))
	}
}

// TestPublishErrorRetried: a failing Publish leaves the recipient where it was, with the error, and a
// later attempt delivers.
func TestPublishErrorRetried(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	net.failing.Store(true)
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	rc := bob.id.Address().Mail()
	id := alice.submit(t, mailFrom(alice.id, bob.id, "retry", "again\r\n"), rc)
	var r store.OutboxRcpt
	waitFor(t, wait, "a failed publish recorded", func() bool {
		r = alice.rcpt(t, id, rc)
		return r.LastError != ""
	})
	if r.State != store.RcptSealed || !strings.Contains(r.LastError, "publish") || alice.out.Stats().PublishErrors == 0 {
		t.Fatalf("after a failed publish: state %s, error %q", r.State, r.LastError)
	}
	key := r.EnvelopeKey
	net.failing.Store(false)
	clk.Advance(2 * time.Second) // past the first backoff
	alice.out.Notify()
	r = alice.waitState(t, id, rc, store.RcptDelivered, wait)
	if !bytes.Equal(r.EnvelopeKey, key) {
		t.Fatal("the retry resealed the message")
	}
}

// TestCrashAfterSealed stops alice's node while her envelope is sealed but not yet published, then
// restarts it from the same file: the same envelope (replay key) is published and delivered once.
func TestCrashAfterSealed(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	hold := make(chan struct{})
	net.hold = hold
	aliceID := newIdentity(t, 1, 8)
	alice := startNode(t, net, clk, "alice", aliceID, dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	rc := bob.id.Address().Mail()
	raw := mailFrom(alice.id, bob.id, "crash", "survives\r\n")
	id := alice.submit(t, raw, rc)
	<-net.publishing // alice is inside Publish: sealed, not published
	r := alice.rcpt(t, id, rc)
	if r.State != store.RcptSealed || len(r.EnvelopeKey) != 32 {
		t.Fatalf("before the crash: state %s", r.State)
	}
	key := r.EnvelopeKey
	alice.close() // the outbox stops inside Publish; the store keeps what was committed
	net.mu.Lock()
	net.hold = nil
	net.mu.Unlock()
	close(hold)
	if n := len(net.published()); n != 0 {
		t.Fatalf("%d blocks published before the crash", n)
	}

	alice = startNode(t, net, clk, "alice", aliceID, dir)
	r = alice.waitState(t, id, rc, store.RcptDelivered, wait)
	if !bytes.Equal(r.EnvelopeKey, key) {
		t.Fatal("restart resealed: new replay key")
	}
	raws, _ := bob.mailbox(t, store.RoleInbox)
	if len(raws) != 1 || !bytes.Equal(raws[0], raw) {
		t.Fatalf("bob has %d messages, want the one", len(raws))
	}
	if seen, _ := bob.st.SeenReplayKey(testCtx(t), store.ReplayKey(key)); !seen {
		t.Fatal("bob filed another envelope than the sealed one")
	}
}

// TestCrashAfterPublish: the block reaches the network but alice does not learn it (Publish fails after
// delivering, as when the process dies right after): she publishes the same envelope again, and bob
// files it once. Bob sends no receipts here, so the second copy is sure to come.
func TestCrashAfterPublish(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	net.failing.Store(true)
	net.deliverOnFail.Store(true)
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir, func(_ *outbox.Config, i *inbox.Config) {
		i.Receipts = nopReceipts{}
	})
	rc := bob.id.Address().Mail()
	raw := mailFrom(alice.id, bob.id, "twice", "one copy\r\n")
	id := alice.submit(t, raw, rc)
	waitFor(t, wait, "bob to file the first copy", func() bool { return bob.in.Stats().Filed == 1 })
	r := alice.waitState(t, id, rc, store.RcptSealed, wait)
	if r.LastError == "" {
		waitFor(t, wait, "alice to record the failure", func() bool { return alice.rcpt(t, id, rc).LastError != "" })
	}
	net.failing.Store(false)
	clk.Advance(2 * time.Second) // past the first backoff
	alice.out.Notify()
	r = alice.waitState(t, id, rc, store.RcptPublished, wait)
	waitFor(t, wait, "bob to see the second copy", func() bool { return bob.in.Stats().Duplicates == 1 })
	blocks := net.published()
	if len(blocks) != 2 || !bytes.Equal(blocks[0].Payload, blocks[1].Payload) || blocks[0].ID() == blocks[1].ID() {
		t.Fatalf("%d blocks; want two blocks with the same envelope", len(blocks))
	}
	if !bytes.Equal(blocks[0].Payload[:32], r.EnvelopeKey) {
		t.Fatal("published another envelope than the stored one")
	}
	if raws, _ := bob.mailbox(t, store.RoleInbox); len(raws) != 1 || !bytes.Equal(raws[0], raw) {
		t.Fatalf("bob has %d messages, want 1", len(raws))
	}
}

type nopReceipts struct{}

func (nopReceipts) SendReceipt(*identity.Identity, identity.Address, [][32]byte, uint32) {}

// TestExpiryBounce: bob never answers. Alice publishes, republishes the same envelope after the retry
// interval; when the mail TTL has passed she gets a delay notice, and when the grace period has passed
// too the recipient fails with a bounce in her INBOX naming bob and the reason.
func TestExpiryBounce(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir, func(o *outbox.Config, _ *inbox.Config) {
		o.RetryInterval = time.Hour
	})
	bob := newIdentity(t, 2, 8)
	rc := bob.Address().Mail()
	id := alice.submit(t, mailFrom(alice.id, bob, "lost", "nobody home\r\n"), rc)
	r := alice.waitState(t, id, rc, store.RcptPublished, wait)
	if d := r.NextAttempt.Sub(clk.Now()); d != time.Hour {
		t.Fatalf("next attempt in %v, want the retry interval", d)
	}
	clk.Advance(time.Hour)
	alice.out.Notify()
	waitFor(t, wait, "a republish", func() bool { return alice.out.Stats().Republished == 1 })
	r2 := alice.rcpt(t, id, rc)
	if !bytes.Equal(r2.EnvelopeKey, r.EnvelopeKey) || r2.BlockIDs[0] == r.BlockIDs[0] {
		t.Fatal("republish: want the same envelope in a new block")
	}
	if d := r2.NextAttempt.Sub(clk.Now()); d != 2*time.Hour {
		t.Fatalf("second wait %v, want doubled", d)
	}
	// At the TTL: a delay notice, and receipts are still awaited for the grace period (protocol.md
	// §10.2, sender rule 3).
	clk.Advance(time.Duration(tangle.BenchNet.DefaultMailTTL) * time.Second)
	alice.out.Notify()
	alice.waitState(t, id, rc, store.RcptDelayed, wait)
	raws, _ := alice.mailbox(t, store.RoleInbox)
	if len(raws) != 1 || !strings.Contains(string(raws[0]), "Action: delayed") {
		t.Fatalf("alice's INBOX has %d messages, want the delay notice", len(raws))
	}
	clk.Advance(outbox.DefaultDeliveryGrace)
	alice.out.Notify()
	r = alice.waitState(t, id, rc, store.RcptFailed, wait)
	if !strings.Contains(r.LastError, "receipt") {
		t.Fatalf("reason %q", r.LastError)
	}
	raws, _ = alice.mailbox(t, store.RoleInbox)
	if len(raws) != 2 {
		t.Fatalf("alice's INBOX has %d messages, want the delay notice and the bounce", len(raws))
	}
	b := string(raws[1])
	for _, want := range []string{"Final-Recipient: rfc822; " + rc, "no delivery receipt within 34 days",
		"Status: 5.4.7", "Action: failed", "Subject: Undelivered: lost", "report-type=delivery-status"} {
		if !strings.Contains(b, want) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	// A late receipt still counts.
	if err := alice.out.HandleReceipt(testCtx(t), bob.Address(), [][32]byte{[32]byte(r.EnvelopeKey)}); err != nil {
		t.Fatal(err)
	}
	if r := alice.rcpt(t, id, rc); r.State != store.RcptDelivered {
		t.Fatalf("late receipt: %s", r.State)
	}
}

// TestBadAddressBounces: a recipient that is not a tanglemail address fails at once, with a bounce.
func TestBadAddressBounces(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	id := alice.submit(t, []byte("Subject: x\r\n\r\nbody\r\n"), "someone@example.org")
	r := alice.waitState(t, id, "someone@example.org", store.RcptFailed, wait)
	if !strings.Contains(r.LastError, "not a tangle address") {
		t.Fatalf("reason %q", r.LastError)
	}
	raws, _ := alice.mailbox(t, store.RoleInbox)
	if len(raws) != 1 || !strings.Contains(string(raws[0]), "Final-Recipient: rfc822; someone@example.org") ||
		!strings.Contains(string(raws[0]), "Status: 5.1.3") {
		t.Fatalf("bounce: %d messages", len(raws))
	}
}

// TestForgedReceiptIgnored: a replay key is public, so mallory could name it; only bob's receipt counts.
func TestForgedReceiptIgnored(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	mallory := startNode(t, net, clk, "mallory", newIdentity(t, 3, 8), dir)
	bob := newIdentity(t, 2, 8)
	rc := bob.Address().Mail()
	id := alice.submit(t, mailFrom(alice.id, bob, "forge", "x\r\n"), rc)
	r := alice.waitState(t, id, rc, store.RcptPublished, wait)
	before := alice.out.Stats().ReceiptsIgnored
	mallory.out.SendReceipt(mallory.id, alice.id.Address(), [][32]byte{[32]byte(r.EnvelopeKey)}, 3600)
	waitFor(t, wait, "mallory's receipt to be ignored", func() bool { return alice.out.Stats().ReceiptsIgnored > before })
	if r := alice.rcpt(t, id, rc); r.State != store.RcptPublished {
		t.Fatalf("forged receipt moved the recipient to %s", r.State)
	}
}

// TestTamperedBlock: a block whose payload was altered (and whose PoW was redone) files nothing.
func TestTamperedBlock(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	net.detach(bob.in) // bob sees only the tampered copies
	rc := bob.id.Address().Mail()
	id := alice.submit(t, mailFrom(alice.id, bob.id, "tamper", "original\r\n"), rc)
	r := alice.waitState(t, id, rc, store.RcptPublished, wait)
	blk := findBlock(t, net, r.BlockIDs[0])
	ctx := testCtx(t)
	for _, off := range []int{0, 40, len(blk.Payload) / 2, len(blk.Payload) - 1} {
		h := blk.Header()
		h.Payload = bytes.Clone(h.Payload)
		h.Payload[off] ^= 0x01
		bad, err := tangle.BenchNet.Build(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if got := bob.in.Process(ctx, bad); got == inbox.Filed || got == inbox.Duplicate {
			t.Fatalf("tampered at %d: %v", off, got)
		}
	}
	h := blk.Header()
	h.Payload = h.Payload[:len(h.Payload)-1] // not a bucket length
	if bad, err := tangle.BenchNet.Build(ctx, h); err == nil {
		if got := bob.in.Process(ctx, bad); got != inbox.Rejected {
			t.Fatalf("truncated: %v", got)
		}
	}
	if raws, _ := bob.mailbox(t, store.RoleInbox); len(raws) != 0 {
		t.Fatalf("bob filed %d tampered messages", len(raws))
	}
	if s := bob.in.Stats(); s.Filed != 0 || s.ReceiptsOut != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestChat: a message with a Chat-Version header travels as a chat envelope with the chat TTL and is
// filed in bob's Chats.
func TestChat(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	handler := &fakeChat{ack: true}
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir, func(_ *outbox.Config, ic *inbox.Config) { ic.Chat = handler })
	rc := bob.id.Address().Mail()
	raw := []byte("From: " + alice.id.Address().Mail() + "\r\nTo: " + rc + "\r\nSubject: hi\r\n\r\nhi bob\r\n")
	sub, err := alice.st.Submit(testCtx(t), store.Submission{OutboxNew: store.OutboxNew{
		From: alice.id.Address().Mail(), Rcpts: []string{rc}, Raw: raw, Content: []byte("chat content"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := alice.waitState(t, sub.OutboxID, rc, store.RcptDelivered, wait)
	if b := findBlock(t, net, r.BlockIDs[0]); b.TTL != tangle.BenchNet.DefaultChatTTL {
		t.Fatalf("chat block TTL %d", b.TTL)
	}
	handler.mu.Lock()
	got := handler.got
	handler.mu.Unlock()
	if len(got) != 1 || string(got[0].Content) != "chat content" || got[0].Kind != seal.KindChat || !got[0].Sender.Equal(alice.id.Address()) {
		t.Fatalf("chat handler got %+v", got)
	}
	if raws, _ := bob.mailbox(t, store.RoleInbox); len(raws) != 0 {
		t.Fatal("chat filed in INBOX")
	}
	// A notice (no ack) is not receipted; a malformed chat is rejected.
	handler.mu.Lock()
	handler.ack, handler.err = false, fmt.Errorf("bad: %w", chat.ErrMalformed)
	handler.mu.Unlock()
	if o := bob.in.Process(testCtx(t), findBlock(t, net, r.BlockIDs[0])); o != inbox.Rejected {
		t.Errorf("malformed chat: outcome %v", o)
	}
}

// fakeChat records the chat envelopes the inbox hands it.
type fakeChat struct {
	mu  sync.Mutex
	got []*seal.Message
	ack bool
	err error
}

func (f *fakeChat) HandleChat(ctx context.Context, me *identity.Identity, m *seal.Message, expires time.Time) (bool, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, false, f.err
	}
	f.got = append(f.got, m)
	return f.ack, f.ack, nil
}

// TestBccStripped: bob receives the message without its Bcc field; several recipients each get their
// own envelope.
func TestBccStripped(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	carol := startNode(t, net, clk, "carol", newIdentity(t, 3, 8), dir)
	head := "From: " + alice.id.Address().Mail() + "\r\nTo: " + bob.id.Address().Mail() + "\r\n"
	raw := []byte(head + "Bcc: " + carol.id.Address().Mail() + ",\r\n  hidden@tangle\r\nSubject: bcc\r\n\r\nBcc: in the body stays\r\n")
	want := []byte(head + "Subject: bcc\r\n\r\nBcc: in the body stays\r\n")
	id := alice.submit(t, raw, bob.id.Address().Mail(), carol.id.Address().Mail())
	a := alice.waitState(t, id, bob.id.Address().Mail(), store.RcptDelivered, wait)
	b := alice.waitState(t, id, carol.id.Address().Mail(), store.RcptDelivered, wait)
	if bytes.Equal(a.EnvelopeKey, b.EnvelopeKey) {
		t.Fatal("two recipients share an envelope")
	}
	for _, nd := range []*node{bob, carol} {
		raws, _ := nd.mailbox(t, store.RoleInbox)
		if len(raws) != 1 || !bytes.Equal(raws[0], want) {
			t.Fatalf("%s got %q", nd.name, raws)
		}
	}
}

// TestForgedE2EMarkStripped: only the recipient's own node may mark a message as decrypted with its
// OpenPGP key (mail.E2EMarkField); a sender that writes the field into its mail, small or chunked,
// finds it removed from the copy filed in the recipient's INBOX.
func TestForgedE2EMarkStripped(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	rc := bob.id.Address().Mail()
	head := "From: " + alice.id.Address().Mail() + "\r\nTo: " + rc + "\r\n"
	forged := "X-Tanglemail-E2E: openpgp; key=00; signature=good\r\n"
	small := []byte(head + forged + "Subject: small\r\n\r\nX-Tanglemail-E2E: in the body stays\r\n")
	big := bigMail(alice.id, bob.id, "big", 100_000)
	big = append([]byte(forged), big...)
	for _, raw := range [][]byte{small, big} {
		id := alice.submit(t, raw, rc)
		alice.waitState(t, id, rc, store.RcptDelivered, wait)
	}
	raws, _ := bob.mailbox(t, store.RoleInbox)
	if len(raws) != 2 {
		t.Fatalf("bob's INBOX has %d messages, want 2", len(raws))
	}
	for _, raw := range raws {
		if mail.HasField(raw, mail.E2EMarkField) {
			t.Errorf("the forged mark was filed:\n%.300s", raw)
		}
	}
	if want := mail.StripE2EMark(small); !bytes.Equal(raws[0], want) && !bytes.Equal(raws[1], want) {
		t.Errorf("the small mail was not filed as sent less the mark")
	}
}

// TestReceiptsBatched: several deliveries to the same sender in a burst share one receipt.
func TestReceiptsBatched(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	gate := &gatedReceiptClock{open: make(chan struct{})}
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir, func(o *outbox.Config, _ *inbox.Config) {
		o.ReceiptDelay = 300 * time.Millisecond
		o.ReceiptClock = gate
	})
	net.detach(bob.in)
	rc := bob.id.Address().Mail()
	var ids []store.OutboxID
	for i := range 5 {
		ids = append(ids, alice.submit(t, mailFrom(alice.id, bob.id, "batch"+string(rune('a'+i)), "x\r\n"), rc))
	}
	var blocks []*tangle.Block
	for _, id := range ids {
		r := alice.waitState(t, id, rc, store.RcptPublished, wait)
		blocks = append(blocks, findBlock(t, net, r.BlockIDs[0]))
	}
	ctx := testCtx(t)
	for _, b := range blocks {
		if got := bob.in.Process(ctx, b); got != inbox.Filed {
			t.Fatalf("%v", got)
		}
	}
	close(gate.open) // the batching window ends only once all five are filed, however slow the machine
	for _, id := range ids {
		alice.waitState(t, id, rc, store.RcptDelivered, wait)
	}
	if s := bob.out.Stats(); s.ReceiptsSent != 1 || s.ReceiptKeysSent != 5 {
		t.Fatalf("receipts: %d envelopes for %d keys, want 1 for 5", s.ReceiptsSent, s.ReceiptKeysSent)
	}
}

// gatedReceiptClock is an outbox.ReceiptClock whose waits end only after open is closed (and their
// duration has passed), so a test decides when a batching window may end.
type gatedReceiptClock struct{ open chan struct{} }

func (gatedReceiptClock) Now() time.Time { return time.Now() }

func (g *gatedReceiptClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		<-g.open
		ch <- <-time.After(d)
	}()
	return ch
}

// bigMail is a message of about n bytes that needs chunking.
func bigMail(from, to *identity.Identity, subject string, n int) []byte {
	var body strings.Builder
	for i := 0; body.Len() < n; i++ {
		body.WriteString(strings.Repeat(string(rune('a'+i%26)), 70))
		body.WriteString("\r\n")
	}
	return mailFrom(from, to, subject, body.String())
}

// TestLargeMessageChunked: a message larger than one envelope travels as chunks and a manifest, and bob
// files it byte-identical, once; alice's recipient is delivered by the receipt for the manifest.
func TestLargeMessageChunked(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	rc := bob.id.Address().Mail()
	raw := bigMail(alice.id, bob.id, "big", 100_000)
	id := alice.submit(t, raw, rc)
	r := alice.waitState(t, id, rc, store.RcptDelivered, wait)
	if len(r.BlockIDs) != 5 { // ⌈100 kB / 32125⌉ = 4 chunks, then the manifest
		t.Fatalf("%d blocks, want 4 chunks and a manifest", len(r.BlockIDs))
	}
	raws, msgs := bob.mailbox(t, store.RoleInbox)
	if len(raws) != 1 || !bytes.Equal(raws[0], raw) {
		t.Fatalf("bob's INBOX: %d messages, want the %d bytes exactly", len(raws), len(raw))
	}
	if msgs[0].Meta.SenderVerified != alice.id.Address().Mail() || !msgs[0].Meta.ViaTangle {
		t.Fatalf("meta %+v", msgs[0].Meta)
	}
	if !bytes.Equal(findBlock(t, net, r.BlockIDs[4]).Payload[:32], r.EnvelopeKey) {
		t.Fatal("the recipient's key is not the manifest envelope's")
	}
	if n, size, err := bob.in.Pending(testCtx(t)); err != nil || n != 0 || size != 0 {
		t.Fatalf("bob keeps %d incomplete messages (%d bytes) after filing, err %v", n, size, err)
	}
	if s := bob.in.Stats(); s.Pieces != 5 || s.Filed != 1 {
		t.Fatalf("bob's stats %+v", s)
	}
}

// TestChunksSurviveRestart: bob gets the manifest and one chunk, restarts, and gets the rest in reverse
// order; the message is filed once, and later copies of its pieces are duplicates (the manifest's is
// receipted again).
func TestChunksSurviveRestart(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	net.detach(bob.in)
	rc := bob.id.Address().Mail()
	raw := bigMail(alice.id, bob.id, "restart", 80_000)
	id := alice.submit(t, raw, rc)
	r := alice.waitState(t, id, rc, store.RcptPublished, wait)
	var blocks []*tangle.Block
	for _, bid := range r.BlockIDs {
		blocks = append(blocks, findBlock(t, net, bid))
	}
	if len(blocks) != 4 {
		t.Fatalf("%d blocks, want 3 chunks and a manifest", len(blocks))
	}
	ctx := testCtx(t)
	for _, b := range []*tangle.Block{blocks[3], blocks[0]} {
		if got := bob.in.Process(ctx, b); got != inbox.Partial {
			t.Fatalf("before restart: %v", got)
		}
	}
	bob.close()
	bob = startNode(t, net, clk, "bob", bob.id, dir)
	net.detach(bob.in)
	if got := bob.in.Process(ctx, blocks[2]); got != inbox.Partial {
		t.Fatalf("after restart: %v", got)
	}
	if got := bob.in.Process(ctx, blocks[1]); got != inbox.Filed {
		t.Fatalf("last chunk: %v", got)
	}
	raws, _ := bob.mailbox(t, store.RoleInbox)
	if len(raws) != 1 || !bytes.Equal(raws[0], raw) {
		t.Fatalf("bob's INBOX: %d messages", len(raws))
	}
	alice.waitState(t, id, rc, store.RcptDelivered, wait)
	before := bob.in.Stats().ReceiptsOut
	for i, b := range blocks {
		if got := bob.in.Process(ctx, b); got != inbox.Duplicate {
			t.Fatalf("copy of piece %d: %v", i, got)
		}
	}
	if got := bob.in.Stats().ReceiptsOut - before; got != 1 {
		t.Fatalf("%d receipts for the copies, want 1 (the manifest's)", got)
	}
	if raws, _ := bob.mailbox(t, store.RoleInbox); len(raws) != 1 {
		t.Fatalf("bob's INBOX: %d messages after the copies", len(raws))
	}
}

// TestCancelledNotLogged: a block whose handling is cut short by a cancelled context (the node
// stopping, a normal SIGTERM) logs no WARN or ERROR line, files nothing, and is filed when handled
// again (the node's rescan at the next start).
func TestCancelledNotLogged(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 0), dir, func(_ *outbox.Config, i *inbox.Config) {
		i.Logger = log
	})
	net.detach(bob.in) // bob sees only what the test hands him
	id := alice.submit(t, mailFrom(alice.id, bob.id, "cancelled", "hello\r\n"), bob.id.Address().Mail())
	r := alice.waitState(t, id, bob.id.Address().Mail(), store.RcptPublished, wait)
	blk := findBlock(t, net, r.BlockIDs[0])
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if got := bob.in.Process(cancelled, blk); got == inbox.Filed {
		t.Fatalf("filed with a cancelled context")
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if strings.Contains(out, "level=ERROR") || strings.Contains(out, "level=WARN") {
		t.Errorf("a cancelled context was logged as a failure:\n%s", out)
	}
	if got := bob.in.Process(testCtx(t), blk); got != inbox.Filed {
		t.Fatalf("handled again: %v, want filed", got)
	}
	if raws, _ := bob.mailbox(t, store.RoleInbox); len(raws) != 1 {
		t.Fatalf("bob's INBOX has %d messages, want 1", len(raws))
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestFilter: Config.Filter sees small and chunked mail after the forged mark was removed, with the
// verified sender, and what it returns is filed (a mark it adds is kept: the node's own).
func TestFilter(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	var mu sync.Mutex
	var seen []string
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir, func(_ *outbox.Config, c *inbox.Config) {
		c.Filter = func(_ context.Context, sender identity.Address, raw []byte) []byte {
			mu.Lock()
			seen = append(seen, sender.Mail())
			mu.Unlock()
			if mail.HasField(raw, mail.E2EMarkField) {
				t.Errorf("the filter got a forged mark:\n%.300s", raw)
			}
			return append([]byte("X-Tanglemail-E2E: filtered\r\n"), raw...)
		}
	})
	rc := bob.id.Address().Mail()
	forged := "X-Tanglemail-E2E: openpgp; key=00; signature=good\r\n"
	small := []byte(forged + "From: " + alice.id.Address().Mail() + "\r\nTo: " + rc + "\r\nSubject: small\r\n\r\nhi\r\n")
	big := append([]byte(forged), bigMail(alice.id, bob.id, "big", 100_000)...)
	for _, raw := range [][]byte{small, big} {
		id := alice.submit(t, raw, rc)
		alice.waitState(t, id, rc, store.RcptDelivered, wait)
	}
	raws, _ := bob.mailbox(t, store.RoleInbox)
	if len(raws) != 2 {
		t.Fatalf("bob's INBOX has %d messages, want 2", len(raws))
	}
	for _, raw := range raws {
		if !bytes.HasPrefix(raw, []byte("X-Tanglemail-E2E: filtered\r\n")) || bytes.Count(raw, []byte("X-Tanglemail-E2E")) != 1 {
			t.Errorf("filed without the filter's output:\n%.300s", raw)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || seen[0] != alice.id.Address().Mail() {
		t.Errorf("filter senders %q", seen)
	}
}

// TestFilterBlobMail: blob mail of at most the bytes Config.FilterBlob allows its sender goes through
// the filter (after the forged mark was removed) and its output is filed; larger blob mail, and blob
// mail from a sender FilterBlob does not name, streams into INBOX as it came, the forged mark
// removed, without the filter.
func TestFilterBlobMail(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	alice, bob, carol := newIdentity(t, 1, 8), newIdentity(t, 2, 8), newIdentity(t, 3, 8)
	var filtered int
	in, err := inbox.New(inbox.Config{Store: st, Identities: []*identity.Identity{bob}, Params: tangle.BenchNet,
		ChunkDB: filepath.Join(t.TempDir(), "chunks.db"),
		FilterBlob: func(sender identity.Address) int64 {
			if sender.Equal(alice.Address()) {
				return 1000
			}
			return 0
		},
		Filter: func(_ context.Context, sender identity.Address, raw []byte) []byte {
			filtered++
			if !sender.Equal(alice.Address()) || mail.HasField(raw, mail.E2EMarkField) {
				t.Errorf("filter got sender %s and\n%.200s", sender.Mail(), raw)
			}
			return append([]byte("X-Tanglemail-E2E: filtered\r\n"), raw...)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	forged := "X-Tanglemail-E2E: openpgp; key=00; signature=good\r\n"
	msg := func(subject string, size int) []byte {
		m := forged + "From: a@b\r\nSubject: " + subject + "\r\n\r\n"
		return []byte(m + strings.Repeat("x", size-len(m)))
	}
	for i, tc := range []struct {
		from     *identity.Identity
		raw      []byte
		filtered bool
	}{{alice, msg("small", 900), true}, {alice, msg("large", 5000), false}, {carol, msg("carol's", 900), false}} {
		var key [32]byte
		key[0] = byte(i + 1)
		if _, err := in.FileBlobMail(context.Background(), inbox.BlobMail{Me: bob, Sender: tc.from.Address(), ReplayKey: key,
			Expires: time.Now().Add(time.Hour), TTL: 3600}, bytes.NewReader(tc.raw)); err != nil {
			t.Fatal(err)
		}
		m := storetest.Mailbox(t, st, store.RoleInbox)
		got := m[len(m)-1].Raw
		want := tc.raw[len(forged):]
		if tc.filtered {
			want = append([]byte("X-Tanglemail-E2E: filtered\r\n"), want...)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("message %d filed as\n%.200s", i, got)
		}
	}
	if filtered != 1 {
		t.Errorf("filter ran %d times, want 1", filtered)
	}
}
