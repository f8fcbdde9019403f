package inbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/supervise"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// ReceiptSender sends delivery receipts (protocol.md §10.2); *outbox.Outbox implements it. SendReceipt
// must not block: it is called on the inbox's hot path.
type ReceiptSender interface {
	SendReceipt(from *identity.Identity, to identity.Address, keys [][32]byte, ttl uint32)
}

// ReceiptHandler is told about receipts that arrive; *outbox.Outbox implements it.
type ReceiptHandler interface {
	HandleReceipt(ctx context.Context, from identity.Address, keys [][32]byte) error
}

// ChatHandler files chat envelopes (kind 2); *chat.Service implements it.
type ChatHandler interface {
	// HandleChat handles an opened chat envelope sealed to me, which the inbox has checked against the
	// replay window; expires is how long its replay key must be kept. Texts and membership changes are
	// filed exactly once (the handler claims the replay key in the filing transaction); ack reports that
	// a receipt is due (filed now or before, protocol.md §10.2), filed that it was filed just now. An
	// error wrapping seal.ErrMalformedContent (as chat.ErrMalformed does) means the content is invalid
	// (protocol.md §10.3).
	HandleChat(ctx context.Context, me *identity.Identity, m *seal.Message, expires time.Time) (filed, ack bool, err error)
}

// BlobMail is a mail carried by a blob (protocol.md §13.7), opened and checked but not yet filed: its
// message is fetched by the node's blob service, which then files it with FileBlobMail.
type BlobMail struct {
	Me        *identity.Identity // the identity it was sealed to
	Sender    identity.Address   // the verified sender
	ReplayKey [32]byte           // claimed when the message is filed
	Sent      time.Time          // the signed sent time
	Block     tangle.ID
	Ref       []byte    // the blob ref (§13.2), not parsed here (package blob is a layer above)
	Header    []byte    // the message's header section, for a notice; may be empty
	Expires   time.Time // how long the replay key must be kept (and the latest the blob is useful)
	TTL       uint32    // TTL of the receipt
}

// BlobHandler takes blob mails (the node's blob service). HandleBlobMail must record the mail durably
// before it returns nil (the inbox sends no receipt for it; FileBlobMail does, once the message is
// filed). An error is a failure: the block is handled again when the sender republishes or at the
// next start.
type BlobHandler interface {
	HandleBlobMail(ctx context.Context, m BlobMail) error
}

// Config configures New. Store, Identities and Params are required.
type Config struct {
	Store      *store.Store
	Identities []*identity.Identity // the identities whose mail this node files
	Params     tangle.Params
	Receipts   ReceiptSender  // sends receipts for what is filed; nil: none are sent
	OnReceipt  ReceiptHandler // hears of received receipts; nil: they are dropped
	Chat       ChatHandler    // files chat envelopes; nil: they are ignored (and not receipted)
	Blobs      BlobHandler    // takes mail carried by blobs; nil: they are ignored (and not receipted)
	// Handled, if set, is told of every block handed to HandleBlock once the inbox is done with it:
	// the tag check, and for a match the trial-open and filing (out is what Process would return). The
	// node uses it to release the block store's hold on blocks not yet trial-opened. It runs on the
	// caller's or a worker's goroutine and must be quick.
	Handled func(b *tangle.Block, out Outcome)
	// Filter, if set, rewrites inline and chunked mail, and the blob mail FilterBlob allows, before it
	// is filed in INBOX, after any X-Tanglemail-E2E field it came with is removed; sender is the
	// envelope's verified sender. The node decrypts end-to-end encrypted Internet mail that came
	// through its relay gateway with it, and adds the mark (protocol.md §16.5). It runs on a worker
	// goroutine (for blob mail, the blob fetcher's), outside the store transaction, for a duplicate too.
	Filter func(ctx context.Context, sender identity.Address, raw []byte) []byte
	// FilterBlob, if set, says up to how many bytes a blob mail from sender is read whole and passed
	// to Filter (0: none); larger blob mail, and any from other senders, is filed from its stream as it
	// came, never held in memory.
	FilterBlob func(sender identity.Address) int64

	Clock   func() time.Time // default time.Now
	Logger  *slog.Logger     // default: discard
	Workers int              // goroutines that open and file blocks; default 2
	Queue   int              // blocks waiting for a worker before HandleBlock blocks; default 256
	// ReplayWindow bounds how old (by its signed sent time) an envelope may be and still be filed, and
	// is how long its replay key is kept; default 2 × the maximum TTL (56 days). See the package notes.
	ReplayWindow time.Duration

	// ChunkDB is the file that keeps the pieces of chunked messages until they are complete; default
	// the store's path with ".db" replaced by ".chunks.db".
	ChunkDB string
	// MaxMessageSize is the largest chunked message accepted; default mail.MaxMessageSize (25 MiB).
	MaxMessageSize int
	// MaxPendingMessages and MaxPendingBytes bound the incomplete chunked messages kept (defaults 1024
	// and 256 MiB); pieces beyond them are dropped, and come again when their sender republishes.
	MaxPendingMessages int
	MaxPendingBytes    int64
}

// Outcome is what Process did with a block.
type Outcome int

// Outcomes.
const (
	NotForUs  Outcome = iota // no identity's tag matched, or no identity could open it (the common case)
	Filed                    // a mail or chat message was filed (and a receipt queued)
	Duplicate                // an envelope filed before arrived again: not filed, but receipted
	ReceiptIn                // a receipt was handed to OnReceipt
	Rejected                 // opened but malformed, or its signature failed; or a malformed receipt
	Stale                    // older than the replay window: dropped
	Failed                   // a store error; nothing filed, no receipt (the sender will retry)
	Ignored                  // not a sealed envelope, or a kind this node does not handle yet
	Partial                  // a piece of a chunked message was kept; the message is not complete yet
	Notice                   // a chat notice (typing, read) was handled; nothing filed, no receipt
	Fetching                 // a blob mail was handed to the blob service, which files it once fetched
)

var outcomeNames = [...]string{"not-for-us", "filed", "duplicate", "receipt", "rejected", "stale", "failed",
	"ignored", "partial", "notice", "fetching"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Stats are counters since New.
type Stats struct {
	Blocks        uint64 // blocks handed to HandleBlock or Process
	TagMatches    uint64 // (block, identity) pairs that passed the tag check and were trial-opened
	Opened        uint64 // envelopes opened
	NotForUs      uint64 // trial-opens that failed HPKE (sealed to someone else, or tampered)
	Malformed     uint64 // seal.ErrMalformed
	BadSignature  uint64 // seal.ErrBadSignature
	Filed         uint64
	Duplicates    uint64
	Stale         uint64
	Failed        uint64 // store errors
	ReceiptsIn    uint64 // receipts received
	BadReceipts   uint64 // receipts whose content did not parse
	ReceiptsOut   uint64 // keys handed to the ReceiptSender
	Ignored       uint64
	Pieces        uint64 // pieces of chunked messages kept
	PiecesDropped uint64 // pieces dropped: limits, or a message whose pieces disagree
	Processed     uint64 // blocks whose processing has finished (for tests and status)
}

type counters struct {
	blocks, tagMatches, opened, notForUs, malformed, badSig, filed, dups, stale, failed atomic.Uint64
	receiptsIn, badReceipts, receiptsOut, ignored, processed, pieces, piecesDropped     atomic.Uint64
	panics                                                                              atomic.Uint64 // recovered in Run's loops
}

// Inbox is the receiver's engine: it trial-opens blocks for the node's identities and files what opens,
// exactly once, acknowledging it with a receipt. It is safe for concurrent use.
type Inbox struct {
	handled    func(*tangle.Block, Outcome)
	st         *store.Store
	openers    []*seal.Opener
	params     tangle.Params
	receipts   ReceiptSender
	onRcpt     ReceiptHandler
	chat       ChatHandler
	blobs      BlobHandler
	filter     func(ctx context.Context, sender identity.Address, raw []byte) []byte
	filterBlob func(sender identity.Address) int64
	now        func() time.Time
	log        *slog.Logger
	workers    int
	window     time.Duration
	inboxID    store.MailboxID
	pieces     *pieceStore
	maxSize    int

	queue chan job
	done  chan struct{} // closed when Run returns
	once  sync.Once

	c counters
}

type job struct {
	b       *tangle.Block
	openers []*seal.Opener
}

// New checks cfg, prepares an opener per identity and returns an Inbox. Call Run, then register
// HandleBlock with the network (p2p.Node.OnBlock).
func New(cfg Config) (*Inbox, error) {
	if cfg.Store == nil || len(cfg.Identities) == 0 || cfg.Params.Name == "" {
		return nil, errors.New("inbox: Store, Identities and Params are required")
	}
	in := &Inbox{
		st: cfg.Store, params: cfg.Params, receipts: cfg.Receipts, onRcpt: cfg.OnReceipt, chat: cfg.Chat,
		blobs:  cfg.Blobs,
		filter: cfg.Filter, filterBlob: cfg.FilterBlob,
		handled: cfg.Handled,
		now:     cfg.Clock, log: cfg.Logger, workers: cfg.Workers, window: cfg.ReplayWindow,
		done: make(chan struct{}),
	}
	for _, id := range cfg.Identities {
		op, err := seal.NewOpener(id)
		if err != nil {
			return nil, fmt.Errorf("inbox: %w", err)
		}
		in.openers = append(in.openers, op)
	}
	if in.now == nil {
		in.now = time.Now
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.workers <= 0 {
		in.workers = 2
	}
	if in.window <= 0 {
		in.window = 2 * tangle.MaxTTL * time.Second
	}
	q := cfg.Queue
	if q <= 0 {
		q = 256
	}
	in.queue = make(chan job, q)
	ctx := context.Background()
	mb, err := cfg.Store.MailboxByRole(ctx, store.RoleInbox)
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	in.inboxID = mb.ID
	in.maxSize = cfg.MaxMessageSize
	if in.maxSize <= 0 || in.maxSize > mail.MaxMessageSize {
		in.maxSize = mail.MaxMessageSize
	}
	path := cfg.ChunkDB
	if path == "" {
		path = strings.TrimSuffix(cfg.Store.Path(), ".db") + ".chunks.db"
	}
	maxMsgs, maxBytes := cfg.MaxPendingMessages, cfg.MaxPendingBytes
	if maxMsgs <= 0 {
		maxMsgs = 1024
	}
	if maxBytes <= 0 {
		maxBytes = 256 << 20
	}
	if in.pieces, err = openPieces(path, maxMsgs, maxBytes); err != nil {
		return nil, err
	}
	return in, nil
}

// Pending reports the incomplete chunked messages kept and the bytes of their pieces.
func (in *Inbox) Pending(ctx context.Context) (messages int, bytes int64, err error) {
	return in.pieces.stats(ctx)
}

// Close closes the chunk database. Call it after Run has returned and no Process call is running.
func (in *Inbox) Close() error { return in.pieces.Close() }

// Stats returns the counters.
func (in *Inbox) Stats() Stats {
	c := &in.c
	return Stats{
		Blocks: c.blocks.Load(), TagMatches: c.tagMatches.Load(), Opened: c.opened.Load(),
		NotForUs: c.notForUs.Load(), Malformed: c.malformed.Load(), BadSignature: c.badSig.Load(),
		Filed: c.filed.Load(), Duplicates: c.dups.Load(), Stale: c.stale.Load(), Failed: c.failed.Load(),
		ReceiptsIn: c.receiptsIn.Load(), BadReceipts: c.badReceipts.Load(), ReceiptsOut: c.receiptsOut.Load(),
		Ignored: c.ignored.Load(), Pieces: c.pieces.Load(), PiecesDropped: c.piecesDropped.Load(),
		Processed: c.processed.Load(),
	}
}

// Run opens and files queued blocks with Workers goroutines until ctx is done. Blocks still queued
// then are dropped (their senders publish again for want of a receipt). It also prunes the pieces of
// chunked messages that can no longer complete, at start and every pruneInterval.
func (in *Inbox) Run(ctx context.Context) error {
	defer in.once.Do(func() { close(in.done) })
	var wg sync.WaitGroup
	wg.Go(func() {
		supervise.Run(ctx, in.log, "inbox", &in.c.panics, func(ctx context.Context) error {
			t := time.NewTicker(pruneInterval)
			defer t.Stop()
			for {
				in.Prune(ctx)
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		})
	})
	for range in.workers {
		wg.Go(func() {
			// A panic while processing a block loses that block (nothing was receipted: its sender
			// publishes it again) and restarts the worker.
			supervise.Run(ctx, in.log, "inbox", &in.c.panics, func(ctx context.Context) error {
				for {
					select {
					case <-ctx.Done():
						return nil
					case j := <-in.queue:
						out := in.process(ctx, j.b, j.openers, nil, 0)
						if in.handled != nil {
							in.handled(j.b, out)
						}
					}
				}
			})
		})
	}
	wg.Wait()
	return ctx.Err()
}

const pruneInterval = 10 * time.Minute

// Prune deletes the kept pieces of chunked messages whose blocks have all expired, or whose message
// was filed already, and the expired replay keys of the mail store.
func (in *Inbox) Prune(ctx context.Context) {
	now := in.now()
	n, err := in.pieces.prune(ctx, now, func(k [32]byte) (bool, error) {
		return in.st.SeenReplayKey(ctx, store.ReplayKey(k))
	})
	if err != nil && ctx.Err() == nil {
		in.log.Error("inbox: pruning chunks", "err", err)
	} else if n > 0 {
		in.log.Debug("inbox: pruned chunks", "pieces", n)
	}
	if _, err := in.st.PruneReplayKeys(ctx, now); err != nil && ctx.Err() == nil {
		in.log.Error("inbox: pruning replay keys", "err", err)
	}
}

// HandleBlock is the network's OnBlock handler. It does the tag check for every identity at once (no
// cryptography) and queues a block that passes it for the workers; blocks for nobody here cost a few
// comparisons per identity. When the queue is full it waits for room, passing the backpressure on to
// the network's ingestion rather than dropping a block. After Run has returned it drops blocks.
func (in *Inbox) HandleBlock(b *tangle.Block) {
	in.c.blocks.Add(1)
	ops := in.match(b)
	if ops == nil {
		in.c.processed.Add(1)
		if in.handled != nil {
			in.handled(b, NotForUs)
		}
		return
	}
	select {
	case in.queue <- job{b, ops}:
	case <-in.done:
		in.c.processed.Add(1)
	}
}

// Process opens and files one block synchronously (tests, blocks handed over by a storage node) and
// reports what it did.
func (in *Inbox) Process(ctx context.Context, b *tangle.Block) Outcome {
	in.c.blocks.Add(1)
	return in.process(ctx, b, in.match(b), nil, 0)
}

// ProcessBatch opens and files a batch of blocks handed over by a storage node (protocol.md §12): it
// trial-opens with Workers goroutines, files the batch's inline mails in one transaction and the rest
// (chat, chunks, receipts) one by one, and returns what it did with each (outs[i] is for bs[i]). Like Process it does not
// check expiry: stored blocks may be past their TTL, and the replay window (not the TTL) bounds what is
// filed. Every envelope is filed at most once (replay keys, also across restarts), and each filing is
// committed before ProcessBatch returns, so a caller may advance its cursor past the batch when the
// error is nil. The error is non-nil when a block failed for a reason that may pass (a store error, a
// full chunk store, ctx ending): then the caller must hand the batch again later, which files nothing
// twice.
func (in *Inbox) ProcessBatch(ctx context.Context, bs []*tangle.Block) ([]Outcome, error) {
	outs := make([]Outcome, len(bs))
	bt := &batch{}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(in.workers, len(bs)) {
		wg.Go(func() {
			for i := range next {
				in.c.blocks.Add(1)
				outs[i] = in.process(ctx, bs[i], in.match(bs[i]), bt, i)
			}
		})
	}
	for i := range bs {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	in.fileBatch(ctx, bt, outs)
	if err := ctx.Err(); err != nil {
		return outs, err
	}
	failed := 0
	for _, o := range outs {
		if o == Failed {
			failed++
		}
	}
	if failed > 0 {
		return outs, fmt.Errorf("inbox: %d of %d blocks could not be filed (will be handed again)", failed, len(bs))
	}
	return outs, nil
}

// batch collects the opened inline mails of a ProcessBatch call, to be filed in one transaction.
type batch struct {
	mu    sync.Mutex
	mails []pendingMail
}

type pendingMail struct {
	idx     int // in the batch
	b       *tangle.Block
	me      *identity.Identity
	m       *seal.Message
	raw     []byte
	expires time.Time
}

func (bt *batch) add(p pendingMail) {
	bt.mu.Lock()
	bt.mails = append(bt.mails, p)
	bt.mu.Unlock()
}

// fileBatch files the batch's inline mails in one store transaction (one fsync instead of one per
// mail), each exactly once: the transaction claims every envelope's replay key before it appends the
// message, as DeliverOnce does, so an envelope filed before — or twice in this batch — is a duplicate.
// It sets their outcomes and queues their receipts once the transaction has committed.
func (in *Inbox) fileBatch(ctx context.Context, bt *batch, outs []Outcome) {
	if len(bt.mails) == 0 {
		return
	}
	filed := make([]bool, len(bt.mails))
	received := in.now()
	raws := make([][]byte, len(bt.mails))
	for i, p := range bt.mails {
		raws[i] = in.forInbox(ctx, p.m.Sender, p.raw)
	}
	err := in.st.Update(ctx, func(tx *store.Tx) error {
		for i, p := range bt.mails {
			ok, err := tx.ClaimReplayKey(store.ReplayKey(p.m.ReplayKey), p.expires)
			if err != nil {
				return err
			}
			if !ok {
				filed[i] = false
				continue
			}
			if _, err := tx.Append(store.NewMessage{MailboxID: in.inboxID, Raw: raws[i], Received: received,
				Meta: store.Meta{SenderVerified: p.m.Sender.Mail(), ViaTangle: true}}); err != nil {
				return err
			}
			filed[i] = true
		}
		return nil
	})
	for i, p := range bt.mails {
		switch {
		case err != nil:
			in.c.failed.Add(1)
			outs[p.idx] = Failed
		case filed[i]:
			in.c.filed.Add(1)
			outs[p.idx] = Filed
			in.log.Info("inbox: filed", "kind", p.m.Kind, "block", p.b.ID().Short())
			in.log.Debug("inbox: filed", "block", p.b.ID().Short(), "from", p.m.Sender, "to", p.me)
		default:
			in.c.dups.Add(1)
			outs[p.idx] = Duplicate
		}
		if err == nil {
			in.receipt(p.me, p.m.Sender, p.m.ReplayKey, in.params.DefaultMailTTL)
		}
	}
	if err != nil {
		in.logFailure(ctx, "inbox: filing a batch", "mails", len(bt.mails), "err", err)
	}
}

// match returns the openers whose identity's tag matches the block's route tag.
func (in *Inbox) match(b *tangle.Block) []*seal.Opener {
	if b.PayloadType != tangle.PayloadSealed {
		return nil
	}
	var ops []*seal.Opener
	for _, op := range in.openers {
		if op.Identity().MatchTag(b.Tag) {
			ops = append(ops, op)
		}
	}
	return ops
}

func (in *Inbox) process(ctx context.Context, b *tangle.Block, ops []*seal.Opener, bt *batch, idx int) (out Outcome) {
	defer in.c.processed.Add(1)
	if len(ops) == 0 {
		return NotForUs
	}
	for _, op := range ops {
		in.c.tagMatches.Add(1)
		m, err := op.Open(in.params.ID, b.Tag, b.Payload)
		switch {
		case err == nil:
			in.c.opened.Add(1)
			return in.deliver(ctx, b, op.Identity(), m, bt, idx)
		case errors.Is(err, seal.ErrNotForUs), errors.Is(err, seal.ErrTagMismatch):
			in.c.notForUs.Add(1)
		case errors.Is(err, seal.ErrMalformed):
			// A wrong length fails for every identity; a bad structure after decryption means the
			// envelope was ours. Either way no other identity can open it.
			in.c.malformed.Add(1)
			in.log.Debug("inbox: malformed envelope", "block", b.ID().Short(), "identity", op.Identity())
			return Rejected
		case errors.Is(err, seal.ErrBadSignature):
			in.c.badSig.Add(1)
			in.log.Debug("inbox: bad signature", "block", b.ID().Short(), "identity", op.Identity())
			return Rejected
		default:
			in.c.failed.Add(1)
			in.logFailure(ctx, "inbox: open", "block", b.ID().Short(), "err", err)
			return Failed
		}
	}
	return NotForUs
}

// deliver files an opened envelope (mail, chat), hands a receipt to OnReceipt, or keeps a chunk.
func (in *Inbox) deliver(ctx context.Context, b *tangle.Block, me *identity.Identity, m *seal.Message, bt *batch, idx int) Outcome {
	now := in.now()
	// Replay window: the key is kept until sent + window, and nothing older than that is filed, so a
	// replay after the key is pruned is refused too.
	limit := m.Sent.Add(in.window)
	if !now.Before(limit) {
		in.c.stale.Add(1)
		in.log.Debug("inbox: envelope older than the replay window", "block", b.ID().Short())
		return Stale
	}
	expires := limit
	if e := b.ExpiresAt(); e.After(expires) {
		expires = e
	}
	switch m.Kind {
	case seal.KindMail:
		mc, err := mail.ParseMailContent(m.Content)
		if err != nil {
			in.c.malformed.Add(1)
			in.log.Debug("inbox: malformed mail content", "block", b.ID().Short())
			return Rejected
		}
		if mc.Manifest != nil {
			return in.piece(ctx, b, me, m, -1, mc.Manifest.ID[:], mc.Manifest.Count, expires)
		}
		if mc.Blob != nil {
			return in.blobMail(ctx, b, me, m, mc.Blob, expires)
		}
		if bt != nil {
			bt.add(pendingMail{idx: idx, b: b, me: me, m: m, raw: mc.Inline, expires: expires})
			return Filed // settled by fileBatch
		}
		return in.file(ctx, b, me, m, in.inboxID, mc.Inline, expires, in.params.DefaultMailTTL)
	case seal.KindChat:
		return in.fileChat(ctx, b, me, m, expires)
	case seal.KindChunk:
		c, err := mail.ParseChunk(m.Content)
		if err != nil {
			in.c.malformed.Add(1)
			in.log.Debug("inbox: malformed chunk", "block", b.ID().Short())
			return Rejected
		}
		return in.piece(ctx, b, me, m, c.Index, c.ID[:], c.Count, expires)
	case seal.KindReceipt:
		keys, err := mail.ParseReceipt(m.Content)
		if err != nil {
			in.c.badReceipts.Add(1)
			in.log.Debug("inbox: malformed receipt", "block", b.ID().Short())
			return Rejected
		}
		in.c.receiptsIn.Add(1)
		if in.onRcpt != nil {
			if err := in.onRcpt.HandleReceipt(ctx, m.Sender, keys); err != nil {
				in.c.failed.Add(1)
				in.logFailure(ctx, "inbox: handling receipt", "block", b.ID().Short(), "err", err)
				return Failed
			}
		}
		return ReceiptIn
	default:
		in.c.ignored.Add(1)
		return Ignored
	}
}

// forInbox is the message as filed in INBOX: without any X-Tanglemail-E2E field it came with (only the
// node writes the mark, mail.E2EMarkField), then through Config.Filter.
func (in *Inbox) forInbox(ctx context.Context, sender identity.Address, raw []byte) []byte {
	raw = mail.StripE2EMark(raw)
	if in.filter != nil {
		raw = in.filter(ctx, sender, raw)
	}
	return raw
}

// logFailure logs a failure to handle a block at ERROR, unless ctx is cancelled: then the node is
// stopping (a normal SIGTERM), the failure is that cancellation, and the block is handled again at the
// next start (the node's rescan), so DEBUG suffices.
func (in *Inbox) logFailure(ctx context.Context, msg string, args ...any) {
	if ctx.Err() != nil {
		in.log.Debug(msg, args...)
		return
	}
	in.log.Error(msg, args...)
}

// file files a message exactly once (DeliverOnce claims the replay key in the filing transaction) and
// queues a receipt, for a first delivery and a duplicate alike.
func (in *Inbox) file(ctx context.Context, b *tangle.Block, me *identity.Identity, m *seal.Message, mbox store.MailboxID,
	raw []byte, expires time.Time, ttl uint32) Outcome {
	if mbox == in.inboxID {
		raw = in.forInbox(ctx, m.Sender, raw)
	} else {
		raw = mail.StripE2EMark(raw) // only the node writes the mark (mail.E2EMarkField)
	}
	_, filed, err := in.st.DeliverOnce(ctx, store.ReplayKey(m.ReplayKey), expires, store.NewMessage{
		MailboxID: mbox,
		Raw:       raw,
		Received:  in.now(),
		Meta:      store.Meta{SenderVerified: m.Sender.Mail(), ViaTangle: true},
	})
	if err != nil {
		in.c.failed.Add(1)
		in.logFailure(ctx, "inbox: filing", "block", b.ID().Short(), "err", err)
		return Failed
	}
	in.receipt(me, m.Sender, m.ReplayKey, ttl)
	if !filed {
		in.c.dups.Add(1)
		in.log.Debug("inbox: duplicate envelope", "block", b.ID().Short())
		return Duplicate
	}
	in.c.filed.Add(1)
	in.log.Info("inbox: filed", "kind", m.Kind, "block", b.ID().Short())
	in.log.Debug("inbox: filed", "block", b.ID().Short(), "from", m.Sender, "to", me)
	return Filed
}

// fileChat hands a chat envelope to the chat layer, which files it once (or handles a notice), and
// queues the receipt it asks for.
func (in *Inbox) fileChat(ctx context.Context, b *tangle.Block, me *identity.Identity, m *seal.Message, expires time.Time) Outcome {
	if in.chat == nil {
		in.c.ignored.Add(1)
		return Ignored
	}
	filed, ack, err := in.chat.HandleChat(ctx, me, m, expires)
	switch {
	case errors.Is(err, seal.ErrMalformedContent):
		in.c.malformed.Add(1)
		in.log.Debug("inbox: malformed chat content", "block", b.ID().Short(), "err", err)
		return Rejected
	case err != nil:
		in.c.failed.Add(1)
		in.logFailure(ctx, "inbox: filing chat", "block", b.ID().Short(), "err", err)
		return Failed
	}
	if ack {
		in.receipt(me, m.Sender, m.ReplayKey, in.params.DefaultChatTTL)
	}
	switch {
	case filed:
		in.c.filed.Add(1)
		in.log.Info("inbox: filed", "kind", m.Kind, "block", b.ID().Short())
		in.log.Debug("inbox: filed", "block", b.ID().Short(), "from", m.Sender, "to", me)
		return Filed
	case ack:
		in.c.dups.Add(1)
		return Duplicate
	}
	return Notice
}

// piece keeps a manifest (idx −1) or chunk of a chunked message and, when it completes the message,
// files it (see fileChunked). A piece whose envelope was seen before is a duplicate: for the manifest
// that means the message was filed, and it is receipted again; a chunk is dropped.
func (in *Inbox) piece(ctx context.Context, b *tangle.Block, me *identity.Identity, m *seal.Message, idx int,
	msgid []byte, count int, expires time.Time) Outcome {
	seen, err := in.st.SeenReplayKey(ctx, store.ReplayKey(m.ReplayKey))
	if err != nil {
		in.c.failed.Add(1)
		in.logFailure(ctx, "inbox: replay check", "block", b.ID().Short(), "err", err)
		return Failed
	}
	if seen {
		in.c.dups.Add(1)
		if idx < 0 {
			in.receipt(me, m.Sender, m.ReplayKey, in.params.DefaultMailTTL)
		}
		return Duplicate
	}
	pieces, err := in.pieces.add(ctx, piece{
		sender: m.Sender.Key, msgid: msgid, idx: idx, count: count, content: m.Content, replayKey: m.ReplayKey,
		senderAddr: m.Sender.Mail(), rcpt: me.PublicKey(), expires: expires,
	})
	if errors.Is(err, errPiecesFull) {
		in.c.piecesDropped.Add(1)
		in.log.Debug("inbox: chunk store full, piece dropped", "block", b.ID().Short())
		return Failed
	}
	if err != nil {
		in.c.failed.Add(1)
		in.logFailure(ctx, "inbox: keeping a chunk", "block", b.ID().Short(), "err", err)
		return Failed
	}
	in.c.pieces.Add(1)
	if pieces == nil {
		return Partial
	}
	return in.fileChunked(ctx, b, pieces)
}

// fileChunked reassembles a complete chunked message (mail.Reassembler checks that the pieces agree and
// match the manifest's length and hash) and files it in one transaction that also claims the replay
// keys of the manifest and of every chunk, so a copy of any piece that arrives later is recognised as a
// duplicate. The pieces are then deleted (a crash before that leaves them to Prune), and the manifest's
// key — the one the sender waits for — is receipted by the identity that opened the manifest.
func (in *Inbox) fileChunked(ctx context.Context, b *tangle.Block, pieces []piece) Outcome {
	manifest := pieces[0]
	sender, msgid := manifest.sender, manifest.msgid
	r := mail.Reassembler{MaxMessageSize: in.maxSize, MaxPending: 1, MaxPendingBytes: in.maxSize}
	var raw []byte
	var err error
	for _, p := range pieces {
		var done []byte
		if p.idx < 0 {
			mc, perr := mail.ParseMailContent(p.content)
			if perr != nil || mc.Manifest == nil {
				err = fmt.Errorf("stored manifest: %v", perr)
				break
			}
			done, err = r.AddManifest(sender, *mc.Manifest)
		} else {
			c, perr := mail.ParseChunk(p.content)
			if perr != nil {
				err = perr
				break
			}
			done, err = r.AddChunk(sender, c)
		}
		if err != nil {
			break
		}
		if done != nil {
			raw = done
		}
	}
	if err == nil && raw == nil {
		err = errors.New("pieces complete but no message")
	}
	if err != nil {
		in.c.piecesDropped.Add(uint64(len(pieces)))
		in.log.Debug("inbox: chunked message discarded", "block", b.ID().Short(), "err", err)
		if rerr := in.pieces.remove(ctx, sender, msgid); rerr != nil {
			in.logFailure(ctx, "inbox: removing chunks", "err", rerr)
		}
		return Rejected
	}
	var me *identity.Identity
	for _, op := range in.openers {
		if string(op.Identity().PublicKey()) == string(manifest.rcpt) {
			me = op.Identity()
		}
	}
	senderAddr, _ := identity.ParseAddress(manifest.senderAddr)
	raw = in.forInbox(ctx, senderAddr, raw)
	filed := false
	err = in.st.Update(ctx, func(tx *store.Tx) error {
		ok, err := tx.ClaimReplayKey(store.ReplayKey(manifest.replayKey), manifest.expires)
		if err != nil || !ok {
			return err
		}
		for _, p := range pieces[1:] {
			if _, err := tx.ClaimReplayKey(store.ReplayKey(p.replayKey), p.expires); err != nil {
				return err
			}
		}
		_, err = tx.Append(store.NewMessage{
			MailboxID: in.inboxID, Raw: raw, Received: in.now(),
			Meta: store.Meta{SenderVerified: manifest.senderAddr, ViaTangle: true},
		})
		filed = err == nil
		return err
	})
	if err != nil {
		in.c.failed.Add(1)
		in.logFailure(ctx, "inbox: filing a chunked message", "block", b.ID().Short(), "err", err)
		return Failed
	}
	if err := in.pieces.remove(ctx, sender, msgid); err != nil {
		in.logFailure(ctx, "inbox: removing chunks", "err", err)
	}
	if me != nil {
		in.receipt(me, senderAddr, manifest.replayKey, in.params.DefaultMailTTL)
	}
	if !filed {
		in.c.dups.Add(1)
		return Duplicate
	}
	in.c.filed.Add(1)
	in.log.Info("inbox: filed", "kind", seal.KindMail, "chunks", len(pieces)-1, "block", b.ID().Short())
	in.log.Debug("inbox: filed", "block", b.ID().Short(), "from", manifest.senderAddr)
	return Filed
}

// blobMail hands a mail carried by a blob (protocol.md §13.7) to the blob service, which fetches the
// message and files it (FileBlobMail); one filed before is only receipted again. Without a blob
// service it is ignored: never filed without its message.
func (in *Inbox) blobMail(ctx context.Context, b *tangle.Block, me *identity.Identity, m *seal.Message,
	bc *mail.BlobContent, expires time.Time) Outcome {
	if in.blobs == nil {
		in.c.ignored.Add(1)
		in.log.Debug("inbox: blob mail, no blob service", "block", b.ID().Short())
		return Ignored
	}
	seen, err := in.st.SeenReplayKey(ctx, store.ReplayKey(m.ReplayKey))
	if err != nil {
		in.c.failed.Add(1)
		in.logFailure(ctx, "inbox: blob mail", "block", b.ID().Short(), "err", err)
		return Failed
	}
	if seen {
		in.receipt(me, m.Sender, m.ReplayKey, in.params.DefaultMailTTL)
		in.c.dups.Add(1)
		return Duplicate
	}
	err = in.blobs.HandleBlobMail(ctx, BlobMail{Me: me, Sender: m.Sender, ReplayKey: m.ReplayKey, Sent: m.Sent,
		Block: b.ID(), Ref: bytes.Clone(bc.Ref), Header: bytes.Clone(bc.Header), Expires: expires,
		TTL: in.params.DefaultMailTTL})
	if err != nil {
		in.c.failed.Add(1)
		in.logFailure(ctx, "inbox: blob mail", "block", b.ID().Short(), "err", err)
		return Failed
	}
	return Fetching
}

// FileBlobMail files the message of a blob mail, fetched complete, exactly once (the replay key is
// claimed in the filing transaction) and queues its receipt, for a first filing and a duplicate alike.
// filed reports whether it was filed just now. msg is read to EOF within the filing transaction
// (store.NewMessage.Body: a large message is stored in pieces, never held whole); an error reading
// it files nothing.
func (in *Inbox) FileBlobMail(ctx context.Context, m BlobMail, msg io.Reader) (filed bool, err error) {
	body := mail.StripE2EMarkReader(msg) // only the node writes the mark (mail.E2EMarkField)
	var max int64
	if in.filter != nil && in.filterBlob != nil {
		max = in.filterBlob(m.Sender)
	}
	if max > 0 {
		// Up to max bytes through the filter; a larger message streams on as it is.
		head, err := io.ReadAll(io.LimitReader(body, max+1))
		if err != nil {
			return false, err
		}
		if int64(len(head)) <= max {
			body = bytes.NewReader(in.filter(ctx, m.Sender, head))
		} else {
			body = io.MultiReader(bytes.NewReader(head), body)
		}
	}
	_, filed, err = in.st.DeliverOnce(ctx, store.ReplayKey(m.ReplayKey), m.Expires, store.NewMessage{
		MailboxID: in.inboxID,
		Body:      body,
		Received:  in.now(),
		Meta:      store.Meta{SenderVerified: m.Sender.Mail(), ViaTangle: true},
	})
	if err != nil {
		return false, err
	}
	in.receipt(m.Me, m.Sender, m.ReplayKey, m.TTL)
	if filed {
		in.c.filed.Add(1)
		in.log.Info("inbox: filed", "kind", seal.KindMail, "blob", true, "block", m.Block.Short())
	} else {
		in.c.dups.Add(1)
	}
	return filed, nil
}

// receipt queues a receipt for an envelope that is durably filed (now or before).
func (in *Inbox) receipt(me *identity.Identity, to identity.Address, key [32]byte, ttl uint32) {
	if in.receipts == nil {
		return
	}
	in.c.receiptsOut.Add(1)
	in.receipts.SendReceipt(me, to, [][32]byte{key}, ttl)
}
