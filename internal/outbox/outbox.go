package outbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/supervise"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Publisher is the network as the outbox needs it (p2p.Node, through a small adapter for PeerCount).
type Publisher interface {
	// Publish stores and gossips a block; an error means it was not published (the outbox retries).
	Publish(ctx context.Context, b *tangle.Block) error
	// PeerCount is the number of connected peers; with none the outbox waits rather than publish.
	PeerCount() int
}

// Tips chooses a new block's parents (dag.Store).
type Tips interface {
	SelectParents(shard uint32, n int) []tangle.ID
}

// Config configures New. Store, Identity, Publisher and Tips are required.
type Config struct {
	Store     *store.Store
	Identity  *identity.Identity // the sender: every envelope is sealed and signed by it
	Params    tangle.Params
	Publisher Publisher
	Tips      Tips

	Clock   func() time.Time // default time.Now; timers still use real time (see Notify)
	Logger  *slog.Logger     // default: discard
	Workers int              // PoW goroutines per block; ≤ 0: GOMAXPROCS
	Parents int              // parents per block; ≤ 0: the tip selector's default

	// DeliveryGrace is how long after a message's lifetime (created + TTL) a published recipient's
	// receipt is still awaited (protocol.md §10.2, sender rule 3): at the TTL the sender gets a delay
	// notice, a receipt within the grace period delivers, and the recipient fails (with the final
	// bounce) only after it. Zero: DefaultDeliveryGrace; negative: none (fail at the TTL).
	DeliveryGrace time.Duration
	// RetryInterval is how long a published recipient waits for its receipt before the envelope is
	// published again (then twice as long, and so on, at most a quarter of the TTL). Default 15 min;
	// never more than TTL/8.
	RetryInterval time.Duration
	// ReceiptDelay is how long a receipt waits for others to the same sender before it is sent
	// (batching). Default 100 ms.
	ReceiptDelay time.Duration
	// ReceiptDelayMean is the mean of the random delay a batch of receipts waits on top of ReceiptDelay,
	// so that relays cannot link a receipt to the message it answers by timing (receipts.go); at most a
	// sixteenth of the republish interval for the receipt's TTL. Zero: no random delay (the node sets
	// node.DefaultReceiptDelayMean).
	ReceiptDelayMean time.Duration
	// ReceiptClock times receipts; default real time. Tests inject one.
	ReceiptClock ReceiptClock
	// OnProgress, if set, is called when a proof-of-work job starts, about ten times a second while it
	// runs, and when it ends. It runs on the grinding goroutine: keep it quick.
	OnProgress func(Job)
	// Rand supplies the random bits of route tags; default crypto/rand.
	Rand io.Reader
	// Yield, if set, tells the proof of work to give way (tangle.WithYield) while it reports true: the
	// node sets it to "a front door served a client in the last moment", so that a user's mail client
	// stays responsive while earlier mail grinds. Called from every grinding goroutine: keep it an
	// atomic load.
	Yield func() bool
	// Blobs, if set, carries mail that does not fit one envelope as a sealed blob (protocol.md §13.7)
	// instead of chunks: only the small mail envelope pays proof of work.
	Blobs BlobSealer
	// PrepareRelay, if set, rewrites a relay message (protocol.md §15.4: mail whose content starts
	// with mail.RelayField) before it is sealed, once per outbox item, given the item's recipients:
	// the node encrypts the message for the Internet recipients end to end (§16.5). The stored item
	// (and the Sent copy) stay as submitted. A relay message larger than PrepareRelayMax bytes is
	// sealed unchanged, from the store's reader, never held whole. An error is temporary: the
	// recipients stay pending and are tried again at the next pass.
	// When it reports Encrypted, the Sent copy gets store.E2EKeyword.
	PrepareRelay    func(ctx context.Context, rcpts []string, content []byte) (Prepared, error)
	PrepareRelayMax int64
}

// Prepared is what Config.PrepareRelay made of a relay message.
type Prepared struct {
	Message   []byte
	Encrypted bool // end to end for every Internet recipient: the Sent copy is marked store.E2EKeyword
}

// Job is one block being built (its proof of work ground), for status displays.
type Job struct {
	OutboxID store.OutboxID // the outbox item; 0 for a receipt
	Rcpt     string         // the recipient as submitted; for a receipt, the address it goes to
	Kind     seal.Kind      // kind of the envelope in the block
	Block    int            // which block of the recipient's bundle, 1-based
	Blocks   int            // how many blocks the bundle has
	Done     uint64         // hashes done so far (updated about ten times a second)
	Expected uint64         // expected hashes (W of protocol.md §3; 0 when PoW is disabled)
	Started  time.Time
	Finished bool // the job ended (published or not); only in the last OnProgress call
}

// Progress is a snapshot of the outbox for status displays.
type Progress struct {
	WaitingForPeers bool  // due work is held back because PeerCount() is 0
	Jobs            []Job // blocks being built now
	QueuedReceipts  int   // receipt keys waiting to be sent
}

// Stats are counters since New.
type Stats struct {
	Sealed          uint64 // recipients sealed
	Published       uint64 // blocks published (mail, chat, chunks)
	Republished     uint64 // recipients published again for want of a receipt
	PublishErrors   uint64 // failed publish attempts (retried)
	Delivered       uint64 // recipients moved to delivered by a receipt
	Delayed         uint64 // recipients past their TTL without a receipt, in the grace period (each with a delay notice for mail)
	Failed          uint64 // recipients given up (each with a bounce)
	ReceiptsSent    uint64 // receipt envelopes published
	ReceiptKeysSent uint64 // keys acknowledged in them
	ReceiptsDropped uint64 // receipt keys dropped because the queue was full
	ReceiptsIgnored uint64 // received keys that named nothing of ours or came from the wrong sender
	NotesSent       uint64 // typing and read notices published (SendNote)
}

type counters struct {
	sealed, published, republished, publishErrors, delivered, failed          atomic.Uint64
	receiptsSent, receiptKeysSent, receiptsDropped, receiptsIgnored, progress atomic.Uint64
	notesSent, delayed                                                        atomic.Uint64
	// panics recovered in the queue loop and the receipt loop (package supervise)
	queuePanics, receiptPanics atomic.Uint64
}

// DefaultDeliveryGrace is how long after the TTL a receipt is still awaited (protocol.md §10.2, sender
// rule 3): 30 days, the default retention of a storage subscription (protocol.md §12), so that a
// recipient whose storage node kept the mail can still acknowledge it when it comes back.
const DefaultDeliveryGrace = 30 * 24 * time.Hour

// Defaults and bounds.
const (
	defaultRetryInterval = 15 * time.Minute
	defaultReceiptDelay  = 100 * time.Millisecond
	dueBatch             = 256 // recipients per OutboxDue query
	maxIdle              = time.Minute
	minPeerPoll          = 100 * time.Millisecond
	maxPeerPoll          = 5 * time.Second
	maxPublishBackoff    = 5 * time.Minute
	maxQueuedReceipts    = 100_000 // keys
)

// Outbox is the sender's engine: it takes due recipients from the store's outbox, seals, builds and
// publishes their blocks, and moves them through their states until a receipt arrives or their time
// runs out. It also sends the receipts the inbox asks for. It is safe for concurrent use; run one
// Outbox per store.
type Outbox struct {
	st         *store.Store
	id         *identity.Identity
	params     tangle.Params
	pub        Publisher
	tips       Tips
	now        func() time.Time
	log        *slog.Logger
	workers    int
	yield      func() bool // Config.Yield
	parents    int
	retry      time.Duration
	grace      time.Duration // DeliveryGrace; 0: none
	rdelay     time.Duration
	rmean      time.Duration
	rclock     ReceiptClock
	onProg     func(Job)
	rnd        io.Reader
	blobs      BlobSealer
	prepare    func(ctx context.Context, rcpts []string, content []byte) (Prepared, error)
	prepareMax int64

	wake        chan struct{} // Notify
	receiptWake chan struct{} // SendReceipt

	mu           sync.Mutex
	jobs         map[*Job]struct{}
	waitingPeers bool
	streak       map[rcptKey]int // consecutive publish failures

	rmu      sync.Mutex
	receipts map[receiptKey]*receiptBatch
	rqueued  int
	chatSent map[string]time.Time // address → when chat last went to it (receipt clock)

	c counters
}

type rcptKey struct {
	id   store.OutboxID
	rcpt string
}

// New checks cfg and returns an Outbox; Run starts it.
func New(cfg Config) (*Outbox, error) {
	if cfg.Store == nil || cfg.Identity == nil || cfg.Publisher == nil || cfg.Tips == nil {
		return nil, errors.New("outbox: Store, Identity, Publisher and Tips are required")
	}
	if cfg.Params.Name == "" {
		return nil, errors.New("outbox: no network parameters")
	}
	o := &Outbox{
		st: cfg.Store, id: cfg.Identity, params: cfg.Params, pub: cfg.Publisher, tips: cfg.Tips,
		now: cfg.Clock, log: cfg.Logger, workers: cfg.Workers, parents: cfg.Parents, yield: cfg.Yield,
		retry: cfg.RetryInterval, grace: cfg.DeliveryGrace, rdelay: cfg.ReceiptDelay, rmean: cfg.ReceiptDelayMean, rclock: cfg.ReceiptClock,
		onProg: cfg.OnProgress, rnd: cfg.Rand, blobs: cfg.Blobs, prepare: cfg.PrepareRelay, prepareMax: cfg.PrepareRelayMax,
		wake:        make(chan struct{}, 1),
		receiptWake: make(chan struct{}, 1),
		jobs:        map[*Job]struct{}{},
		streak:      map[rcptKey]int{},
		receipts:    map[receiptKey]*receiptBatch{},
		chatSent:    map[string]time.Time{},
	}
	if o.rclock == nil {
		o.rclock = realClock{}
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.retry <= 0 {
		o.retry = defaultRetryInterval
	}
	if o.rdelay <= 0 {
		o.rdelay = defaultReceiptDelay
	}
	switch {
	case o.grace == 0:
		o.grace = DefaultDeliveryGrace
	case o.grace < 0:
		o.grace = 0
	}
	if o.rnd == nil {
		o.rnd = rand.Reader
	}
	return o, nil
}

// Notify wakes the outbox: call it after a submission made outside the store's change bus, when peers
// connect, or after moving a test clock. Changes to the store's outbox wake it by themselves.
func (o *Outbox) Notify() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (o *Outbox) Stats() Stats {
	return Stats{
		Sealed: o.c.sealed.Load(), Published: o.c.published.Load(), Republished: o.c.republished.Load(),
		PublishErrors: o.c.publishErrors.Load(), Delivered: o.c.delivered.Load(), Delayed: o.c.delayed.Load(), Failed: o.c.failed.Load(),
		ReceiptsSent: o.c.receiptsSent.Load(), ReceiptKeysSent: o.c.receiptKeysSent.Load(),
		ReceiptsDropped: o.c.receiptsDropped.Load(), ReceiptsIgnored: o.c.receiptsIgnored.Load(),
		NotesSent: o.c.notesSent.Load(),
	}
}

// Progress returns a snapshot of the work in progress.
func (o *Outbox) Progress() Progress {
	o.mu.Lock()
	p := Progress{WaitingForPeers: o.waitingPeers}
	for j := range o.jobs {
		p.Jobs = append(p.Jobs, *j)
	}
	o.mu.Unlock()
	o.rmu.Lock()
	p.QueuedReceipts = o.rqueued
	o.rmu.Unlock()
	return p
}

// Run works the outbox until ctx is done, and returns ctx's error. Recipients keep their state in the
// store, so Run may be stopped at any point and started again (also by a new process) without losing
// or duplicating a message (see the package notes).
//
// A panic in either loop (the queue's, the receipts') is recovered, logged, counted
// (tanglemail_panics_total{loop="outbox"} and {loop="outbox_receipts"}) and the loop restarted.
func (o *Outbox) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() {
		supervise.Run(ctx, o.log, "outbox_receipts", &o.c.receiptPanics, func(ctx context.Context) error {
			o.receiptLoop(ctx)
			return nil
		})
	})
	defer wg.Wait()
	return supervise.Run(ctx, o.log, "outbox", &o.c.queuePanics, o.run)
}

// run is the queue loop of Run.
func (o *Outbox) run(ctx context.Context) error {
	l := o.st.Subscribe()
	defer l.Close()

	peerPoll := minPeerPoll
	for {
		res := o.pass(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := maxIdle
		switch {
		case res.noPeers:
			wait, peerPoll = peerPoll, min(2*peerPoll, maxPeerPoll)
		case res.errors:
			peerPoll = minPeerPoll
			wait = time.Second
		default:
			peerPoll = minPeerPoll
			if !res.next.IsZero() {
				wait = min(max(res.next.Sub(o.now()), 0), maxIdle)
			}
		}
		o.mu.Lock()
		o.waitingPeers = res.noPeers
		o.mu.Unlock()
		if !o.sleep(ctx, l, wait) {
			return ctx.Err()
		}
	}
}

// sleep waits for d, a Notify, or a change to the outbox that makes a recipient pending (a submission,
// a reschedule). It reports false when ctx is done.
func (o *Outbox) sleep(ctx context.Context, l *store.Listener, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-o.wake:
			return true
		case <-t.C:
			return true
		case <-l.Ready():
			changes, overflow := l.Take()
			if overflow {
				return true
			}
			for _, c := range changes {
				if co, ok := c.(store.ChangeOutbox); ok && co.State == store.RcptPending {
					return true
				}
			}
		}
	}
}

type passResult struct {
	next    time.Time // earliest next attempt of a non-final recipient, zero if none
	noPeers bool      // due work was held back for want of peers
	errors  bool      // a store error left due work undone
}

// pass works every recipient that is due now, each at most once.
func (o *Outbox) pass(ctx context.Context) passResult {
	var res passResult
	done := map[rcptKey]bool{}
	items := map[store.OutboxID]*item{}
	for ctx.Err() == nil {
		due, err := o.st.OutboxDue(ctx, o.now(), dueBatch)
		if err != nil {
			if ctx.Err() == nil {
				o.log.Error("outbox: listing due recipients", "err", err)
			}
			res.errors = true
			return res
		}
		progress := false
		for _, r := range due {
			k := rcptKey{r.OutboxID, r.Rcpt}
			if done[k] {
				continue
			}
			done[k], progress = true, true
			switch err := o.work(ctx, r, items); {
			case errors.Is(err, p2p.ErrNoPeers):
				res.noPeers = true
			case err != nil && ctx.Err() == nil:
				o.log.Error("outbox: recipient", "outbox", r.OutboxID, "err", err)
				o.log.Debug("outbox: recipient", "outbox", r.OutboxID, "rcpt", r.Rcpt)
				res.errors = true
			}
			if ctx.Err() != nil {
				return res
			}
		}
		if !progress {
			break
		}
	}
	if next, err := o.st.OutboxDue(ctx, time.UnixMilli(1<<62), 1); err == nil && len(next) > 0 {
		res.next = next[0].NextAttempt
	}
	return res
}

// item is what the outbox needs of an outbox item, loaded once per pass.
type item struct {
	id       store.OutboxID
	created  time.Time
	raw      []byte // as submitted; only its header section when large
	large    bool   // mail for a blob, sealed from the store's reader (parts), not from raw
	content  []byte // chat content (store.OutboxNew.Content), nil for mail
	kind     seal.Kind
	ttl      uint32
	deadline time.Time // created + TTL: without a receipt by then, the recipient fails
	rcpts    []string  // every recipient of the item, as submitted (Config.PrepareRelay)

	parts  []part // the envelope contents, computed for the first recipient sealed
	reason *mail.Reason
}

func (o *Outbox) item(ctx context.Context, id store.OutboxID, items map[store.OutboxID]*item) (*item, error) {
	if it, ok := items[id]; ok {
		return it, nil
	}
	oi, err := o.st.OutboxItem(ctx, id)
	if err != nil {
		return nil, err
	}
	content, err := o.st.OutboxContent(ctx, id)
	if err != nil {
		return nil, err
	}
	it := &item{id: id, created: oi.Created, content: content, kind: kindOf(content)}
	for _, r := range oi.Rcpts {
		it.rcpts = append(it.rcpts, r.Rcpt)
	}
	if it.kind == seal.KindMail && o.blobs != nil && oi.Size >= seal.MaxContent {
		// Mail for a blob (parts): hold only its header; the blob is sealed from the store's reader.
		br, err := o.st.OutboxReader(ctx, id)
		if err != nil {
			return nil, err
		}
		it.raw, it.large = br.Header(), true
	} else if it.raw, err = o.st.OutboxRaw(ctx, id); err != nil {
		return nil, err
	}
	it.ttl = o.ttlOf(it.kind)
	it.deadline = it.created.Add(time.Duration(it.ttl) * time.Second)
	items[id] = it
	return it, nil
}

// work advances one due recipient as far as it can go now.
func (o *Outbox) work(ctx context.Context, r store.OutboxRcpt, items map[store.OutboxID]*item) error {
	it, err := o.item(ctx, r.OutboxID, items)
	if err != nil {
		return err
	}
	now := o.now()
	if !now.Before(it.deadline) {
		life := time.Duration(it.ttl) * time.Second
		switch {
		case r.State == store.RcptDelayed:
			// Due only at the end of the grace period (NextAttempt): the final failure.
			return o.fail(ctx, r, it, mail.NoReceipt(life+o.grace))
		case r.State == store.RcptPublished && o.blobMail(it):
			// Its blob is deleted now: no receipt can come (blobexpiry.go).
			return o.fail(ctx, r, it, mail.BlobNotFetched(life))
		case r.State == store.RcptPublished && o.grace > 0:
			return o.delay(ctx, r, it, life)
		}
		// Never published (no peers, publish errors the whole lifetime): no block can reach the
		// recipient, so there is no receipt to wait for.
		return o.fail(ctx, r, it, mail.NoReceipt(life))
	}
	to, err := recipient(r)
	if err != nil {
		return o.fail(ctx, r, it, mail.Reason{Status: "5.1.3", Text: err.Error()})
	}
	if o.pub.PeerCount() == 0 {
		return p2p.ErrNoPeers
	}
	if r.State == store.RcptPending {
		if it.parts == nil && it.reason == nil {
			var err error
			if it.parts, it.reason, err = o.parts(ctx, it); err != nil {
				return err // retried at the next pass
			}
		}
		if it.reason != nil {
			return o.fail(ctx, r, it, *it.reason)
		}
		sent := now
		if it.kind == seal.KindChat {
			// A chat envelope's sent time is the item's creation time, the same for every member:
			// membership changes are ordered by it (protocol.md §10.3).
			sent = it.created
		}
		payloads, err := sealParts(o.id, to, o.params.ID, sent, it.parts)
		if err != nil {
			return o.fail(ctx, r, it, mail.Reason{Status: "5.3.0", Text: err.Error()})
		}
		// The envelopes are durable before any block carries them: a crash from here on republishes
		// these envelopes, never new ones with other replay keys.
		r, err = o.st.UpdateRecipient(ctx, r.OutboxID, r.Rcpt, sealedUpdate(payloads, now))
		if err != nil {
			return err
		}
		o.c.sealed.Add(1)
	}
	return o.publish(ctx, r, it, to)
}

// recipient is r's address, parsed once by the store at Enqueue; a recipient that is not a tangle
// address is parsed again here, once, for the reason of its bounce.
func recipient(r store.OutboxRcpt) (identity.Address, error) {
	if r.Addr.Key != nil {
		return r.Addr, nil
	}
	return mail.ParseRecipient(r.Rcpt)
}

// publish builds and publishes a block for each payload of the recipient's bundle, then records the
// block ids (→ published) or schedules a retry.
func (o *Outbox) publish(ctx context.Context, r store.OutboxRcpt, it *item, to identity.Address) error {
	payloads, err := decodeBundle(r.Envelope)
	if err != nil {
		return o.fail(ctx, r, it, mail.Reason{Status: "5.3.0", Text: err.Error()})
	}
	k := rcptKey{r.OutboxID, r.Rcpt}
	ids := make([][32]byte, 0, len(payloads))
	for i, p := range payloads {
		kind := it.kind
		if i < len(payloads)-1 {
			kind = seal.KindChunk
		}
		job := &Job{OutboxID: r.OutboxID, Rcpt: r.Rcpt, Kind: kind, Block: i + 1, Blocks: len(payloads)}
		id, err := o.publishPayload(ctx, job, to, p, it.ttl)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			o.c.publishErrors.Add(1)
			o.mu.Lock()
			n := o.streak[k]
			o.streak[k] = n + 1
			o.mu.Unlock()
			delay := min(time.Second<<min(n, 20), maxPublishBackoff)
			o.log.Warn("outbox: publish failed, will retry", "outbox", r.OutboxID, "in", delay, "err", err)
			o.log.Debug("outbox: publish failed", "outbox", r.OutboxID, "rcpt", r.Rcpt)
			_, uerr := o.st.UpdateRecipient(ctx, r.OutboxID, r.Rcpt, store.RcptUpdate{
				State: r.State, NextAttempt: minTime(o.now().Add(delay), it.deadline),
				Error: "publish: " + err.Error(), Attempt: true,
			})
			return ignoreRace(uerr)
		}
		ids = append(ids, id)
	}
	o.mu.Lock()
	delete(o.streak, k)
	o.mu.Unlock()
	now := o.now()
	nr, err := o.st.UpdateRecipient(ctx, r.OutboxID, r.Rcpt, store.RcptUpdate{
		State: store.RcptPublished, BlockIDs: ids, Attempt: true,
		NextAttempt: minTime(now.Add(o.retryDelay(it.ttl, r.Attempts+1)), it.deadline),
	})
	if err != nil {
		return ignoreRace(err)
	}
	if r.State == store.RcptPublished {
		o.c.republished.Add(1)
	}
	o.log.Info("outbox: published", "outbox", r.OutboxID, "blocks", len(ids),
		"block", tangle.ID(ids[len(ids)-1]).Short(), "attempt", nr.Attempts)
	o.log.Debug("outbox: published", "outbox", r.OutboxID, "rcpt", r.Rcpt)
	return nil
}

// ignoreRace treats ErrBadTransition as success: a receipt (or another writer) moved the recipient to a
// final state while we worked on it, which is what we wanted anyway.
func ignoreRace(err error) error {
	if errors.Is(err, store.ErrBadTransition) {
		return nil
	}
	return err
}

// retryDelay is how long to wait for a receipt after the n-th publication (n ≥ 1).
func (o *Outbox) retryDelay(ttl uint32, n int) time.Duration {
	life := time.Duration(ttl) * time.Second
	base := min(o.retry, life/8)
	return min(base<<min(max(n-1, 0), 16), life/4)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// publishPayload builds a block carrying payload to `to` (route tag, shard, parents, PoW) and publishes
// it.
func (o *Outbox) publishPayload(ctx context.Context, job *Job, to identity.Address, payload []byte, ttl uint32) (tangle.ID, error) {
	tag := tangle.Tag(to.MakeTag(o.rnd))
	parents := o.tips.SelectParents(tag.Shard(o.params.ShardBits), o.parents)
	h := tangle.Header{
		Network: o.params.ID, Time: o.now().UnixMilli(), TTL: ttl, Parents: parents, Tag: tag,
		PayloadType: tangle.PayloadSealed, Payload: payload,
	}
	job.Started = o.now()
	job.Expected = o.params.Work(h.EncodedSize(), ttl)
	o.jobStart(job)
	defer o.jobEnd(job)
	opts := []tangle.GrindOption{tangle.WithWorkers(o.workers), tangle.WithProgress(func(done, expected uint64) {
		o.jobProgress(job, done, expected)
	})}
	if o.yield != nil {
		opts = append(opts, tangle.WithYield(o.yield))
	}
	b, err := o.params.Build(ctx, h, opts...)
	if err != nil {
		return tangle.ID{}, fmt.Errorf("build block: %w", err)
	}
	if err := o.pub.Publish(ctx, b); err != nil {
		return tangle.ID{}, err
	}
	o.c.published.Add(1)
	if job.Kind == seal.KindChat {
		o.noteChatSent(to)
	}
	return b.ID(), nil
}

func (o *Outbox) jobStart(j *Job) {
	o.mu.Lock()
	o.jobs[j] = struct{}{}
	snap := *j
	o.mu.Unlock()
	if o.onProg != nil {
		o.onProg(snap)
	}
}

func (o *Outbox) jobProgress(j *Job, done, expected uint64) {
	o.mu.Lock()
	j.Done, j.Expected = done, expected
	snap := *j
	o.mu.Unlock()
	if o.onProg != nil {
		o.onProg(snap)
	}
}

func (o *Outbox) jobEnd(j *Job) {
	o.mu.Lock()
	delete(o.jobs, j)
	j.Finished = true
	snap := *j
	o.mu.Unlock()
	if o.onProg != nil {
		o.onProg(snap)
	}
}

// Postmaster is the From address of the outbox's bounces.
const Postmaster = "postmaster@tangle"

// fail gives a recipient up: it is marked failed and a bounce (mail.Bounce) naming it and the reason is
// filed in the sender's INBOX, in one transaction, so there is exactly one bounce per failed recipient.
func (o *Outbox) fail(ctx context.Context, r store.OutboxRcpt, it *item, reason mail.Reason) error {
	now := o.now()
	raw := mail.Bounce(it.raw, r.Rcpt, reason, now, Postmaster)
	err := o.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.UpdateRecipient(r.OutboxID, r.Rcpt, store.RcptUpdate{State: store.RcptFailed, Error: reason.Text}); err != nil {
			return err
		}
		mb, err := tx.MailboxByRole(store.RoleInbox)
		if err != nil {
			return err
		}
		_, err = tx.Append(store.NewMessage{MailboxID: mb.ID, Raw: raw, Received: now})
		return err
	})
	if err != nil {
		return ignoreRace(err)
	}
	o.c.failed.Add(1)
	o.mu.Lock()
	delete(o.streak, rcptKey{r.OutboxID, r.Rcpt})
	o.mu.Unlock()
	o.log.Warn("outbox: delivery failed", "outbox", r.OutboxID, "status", reason.Status, "reason", reason.Text)
	o.log.Debug("outbox: delivery failed", "outbox", r.OutboxID, "rcpt", r.Rcpt)
	return nil
}

// delay moves a published recipient whose message's lifetime is over to delayed, due at the end of
// the grace period, and files a delay notice (mail.DelayNotice: RFC 3464 §2.3.3 Action "delayed",
// §2.3.9 Will-Retry-Until the end of the grace period) in the sender's INBOX, in one transaction: one
// notice per recipient, and a restart finds the recipient delayed and files none again. Chat gets no
// notice (its view shows the message sent but not delivered); its final failure is filed as for mail.
// Nothing is published during the grace period: the blocks have expired on relays, and a recipient
// that comes back can only find them at a storage node, which keeps them as they are.
func (o *Outbox) delay(ctx context.Context, r store.OutboxRcpt, it *item, life time.Duration) error {
	now := o.now()
	until := it.deadline.Add(o.grace)
	reason := mail.Delayed(life)
	err := o.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.UpdateRecipient(r.OutboxID, r.Rcpt, store.RcptUpdate{
			State: store.RcptDelayed, NextAttempt: until, Error: reason.Text,
		}); err != nil {
			return err
		}
		if it.kind == seal.KindChat {
			return nil
		}
		mb, err := tx.MailboxByRole(store.RoleInbox)
		if err != nil {
			return err
		}
		raw := mail.DelayNotice(it.raw, r.Rcpt, reason, now, until, Postmaster)
		_, err = tx.Append(store.NewMessage{MailboxID: mb.ID, Raw: raw, Received: now})
		return err
	})
	if err != nil {
		return ignoreRace(err)
	}
	o.c.delayed.Add(1)
	o.mu.Lock()
	delete(o.streak, rcptKey{r.OutboxID, r.Rcpt})
	o.mu.Unlock()
	o.log.Info("outbox: no receipt within the TTL; waiting for a late one", "outbox", r.OutboxID, "until", until)
	o.log.Debug("outbox: delayed", "outbox", r.OutboxID, "rcpt", r.Rcpt)
	return nil
}

// HandleReceipt marks as delivered the recipients whose envelopes have the given replay keys, if `from`
// (the receipt's verified sender) is the address each was sealed to (protocol.md §10.2). Keys that name
// nothing of ours, or an envelope to someone else, are ignored: a replay key is visible to every relay,
// so only the recipient's signature makes an acknowledgement. Delayed recipients (in the grace period)
// become delivered; final ones stay as they are, except that failed ones become delivered too.
func (o *Outbox) HandleReceipt(ctx context.Context, from identity.Address, keys [][32]byte) error {
	for _, k := range keys {
		r, err := o.st.OutboxByEnvelopeKey(ctx, k[:])
		if errors.Is(err, store.ErrNoOutboxItem) {
			o.c.receiptsIgnored.Add(1)
			continue
		}
		if err != nil {
			return err
		}
		to, err := recipient(r)
		if err != nil || !to.Equal(from) {
			o.c.receiptsIgnored.Add(1)
			o.log.Debug("outbox: receipt from another sender ignored", "outbox", r.OutboxID)
			continue
		}
		if r.State == store.RcptDelivered {
			continue
		}
		_, err = o.st.UpdateRecipient(ctx, r.OutboxID, r.Rcpt, store.RcptUpdate{State: store.RcptDelivered})
		if errors.Is(err, store.ErrBadTransition) {
			continue
		}
		if err != nil {
			return err
		}
		o.c.delivered.Add(1)
		o.mu.Lock()
		delete(o.streak, rcptKey{r.OutboxID, r.Rcpt})
		o.mu.Unlock()
		o.log.Info("outbox: delivered", "outbox", r.OutboxID)
		o.log.Debug("outbox: delivered", "outbox", r.OutboxID, "rcpt", r.Rcpt)
		delivered := func(rc store.OutboxRcpt) bool { return rc.State == store.RcptDelivered }
		if err := o.st.MarkSentCopy(ctx, r.OutboxID, store.DeliveredKeyword, delivered); err != nil && ctx.Err() == nil {
			o.log.Warn("outbox: could not mark the Sent copy delivered", "outbox", r.OutboxID, "err", err)
		}
	}
	return nil
}
