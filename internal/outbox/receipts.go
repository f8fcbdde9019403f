package outbox

import (
	"context"
	"encoding/binary"
	"io"
	"math"
	"slices"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/seal"
)

// Receipts to send are kept in memory only, batched per (our identity, their address). Losing them in a
// crash loses nothing: the sender, without a receipt, publishes the envelope again, the inbox sees a
// duplicate, and a duplicate triggers a receipt again (see the package notes).
//
// Timing (protocol.md §10.2, docs/threat-model.md): a receipt that followed its mail at once would tell
// every relay who wrote to whom (a block tagged for bob, then 190 ms later one tagged for alice). A batch
// therefore waits the batching window (ReceiptDelay) plus a random delay drawn afresh for each batch
// from an exponential distribution (memoryless: the time already waited says nothing about when it
// goes), truncated at four times its mean. The mean is Config.ReceiptDelayMean, at most a sixteenth of
// the republish interval for the receipt's TTL, so every receipt is out within a quarter of that
// interval and no sender grinds its mail twice for want of one. A chat receipt to a peer this node has
// sent chat to (a text or a notice) within openConversation skips the random delay: while both sides
// write, their own messages link them as well as a receipt would, and the ✓ stays quick.

type receiptKey struct {
	from string // our identity's address
	to   string
}

type receiptBatch struct {
	from     *identity.Identity
	to       identity.Address
	keys     [][32]byte
	set      map[[32]byte]struct{}
	ttl      uint32
	due      time.Time // when it is sent (receipt clock): first key + window + random delay, or a retry's backoff
	failures int
}

// openConversation is how long after this node sent chat to a peer its chat receipts to that peer go
// out without the random delay; maxOpenConversations bounds the table.
const (
	openConversation     = 10 * time.Minute
	maxOpenConversations = 10_000
)

// ReceiptClock is the receipt sender's clock: when receipts are due and the wait for them. Tests inject
// one to check the delays without waiting for them.
type ReceiptClock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SendReceipt queues a receipt from `from` (the identity an envelope was sealed to) to `to` (its verified
// sender) acknowledging keys, to be published in a block of TTL ttl (at least; a batch takes the
// longest TTL asked for). It never blocks: the inbox calls it on its hot path. Keys already queued for
// the same pair are merged and go out with them; when the queue is full, keys are dropped (and
// counted): their senders will publish again and be acknowledged then.
func (o *Outbox) SendReceipt(from *identity.Identity, to identity.Address, keys [][32]byte, ttl uint32) {
	if from == nil || len(keys) == 0 {
		return
	}
	k := receiptKey{from.Address().String(), to.String()}
	now := o.rclock.Now()
	o.rmu.Lock()
	b := o.receipts[k]
	if b == nil {
		b = &receiptBatch{from: from, to: to, set: map[[32]byte]struct{}{}}
		b.due = now.Add(o.receiptDelay(ttl, to, now))
		o.receipts[k] = b
	} else if b.failures == 0 {
		// A key that may go quicker (a chat receipt in an open conversation) takes the batch with it.
		b.due = minTime(b.due, now.Add(o.receiptDelay(ttl, to, now)))
	}
	b.ttl = max(b.ttl, ttl)
	for _, key := range keys {
		if _, ok := b.set[key]; ok {
			continue
		}
		if o.rqueued >= maxQueuedReceipts {
			o.c.receiptsDropped.Add(1)
			continue
		}
		b.set[key] = struct{}{}
		b.keys = append(b.keys, key)
		o.rqueued++
	}
	if len(b.keys) == 0 {
		delete(o.receipts, k)
	}
	o.rmu.Unlock()
	select {
	case o.receiptWake <- struct{}{}:
	default:
	}
}

// receiptDelay is how long a new batch of receipts of TTL ttl to `to` waits: the batching window, plus
// the random delay unless it is a chat receipt in an open conversation. Called with rmu held.
func (o *Outbox) receiptDelay(ttl uint32, to identity.Address, now time.Time) time.Duration {
	if ttl < o.params.DefaultMailTTL {
		if t, ok := o.chatSent[to.String()]; ok && now.Sub(t) < openConversation {
			return o.rdelay
		}
	}
	return o.rdelay + o.randomReceiptDelay(ttl)
}

// receiptDelayMean is the mean of the random delay of a receipt of TTL ttl: ReceiptDelayMean, at most
// a sixteenth of the republish interval for that TTL.
func (o *Outbox) receiptDelayMean(ttl uint32) time.Duration {
	return min(o.rmean, o.retryDelay(ttl, 1)/16)
}

// randomReceiptDelay draws a delay from the exponential distribution with mean receiptDelayMean(ttl),
// truncated at four times the mean (inverse transform of the truncated distribution, so there is no
// lump at the bound): d = −μ·ln(1 − u·(1 − e^−4)), u uniform in [0, 1).
func (o *Outbox) randomReceiptDelay(ttl uint32) time.Duration {
	mean := o.receiptDelayMean(ttl)
	if mean <= 0 {
		return 0
	}
	var b [8]byte
	if _, err := io.ReadFull(o.rnd, b[:]); err != nil {
		return mean // no randomness: the mean, rather than no delay
	}
	u := float64(binary.LittleEndian.Uint64(b[:])>>11) / (1 << 53)
	d := -float64(mean) * math.Log1p(-u*(1-math.Exp(-receiptDelayBound)))
	return min(time.Duration(d), time.Duration(receiptDelayBound*float64(mean)))
}

// receiptDelayBound is where the random delay's distribution is truncated, in means.
const receiptDelayBound = 4

// noteChatSent records that chat went to `to` just now: its conversation is open (receiptDelay).
func (o *Outbox) noteChatSent(to identity.Address) {
	now := o.rclock.Now()
	o.rmu.Lock()
	defer o.rmu.Unlock()
	if len(o.chatSent) >= maxOpenConversations {
		for a, t := range o.chatSent {
			if now.Sub(t) >= openConversation {
				delete(o.chatSent, a)
			}
		}
		if len(o.chatSent) >= maxOpenConversations {
			return // more open conversations than we keep: the others' receipts take the delay
		}
	}
	o.chatSent[to.String()] = now
}

// receiptLoop publishes queued receipts as they fall due, one envelope per batch (per mail.MaxReceiptKeys
// keys). With no peers it waits, polling PeerCount.
func (o *Outbox) receiptLoop(ctx context.Context) {
	peerPoll := minPeerPoll
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.receiptWake:
		case <-timer:
		}
		timer = nil
		next := o.nextReceiptDue()
		if next.IsZero() {
			continue
		}
		if wait := next.Sub(o.rclock.Now()); wait > 0 {
			timer = o.rclock.After(wait)
			continue
		}
		if o.pub.PeerCount() == 0 {
			timer = o.rclock.After(peerPoll)
			peerPoll = min(2*peerPoll, maxPeerPoll)
			continue
		}
		peerPoll = minPeerPoll
		o.flushReceipts(ctx)
		if next := o.nextReceiptDue(); !next.IsZero() {
			timer = o.rclock.After(max(next.Sub(o.rclock.Now()), 0))
		}
	}
}

// nextReceiptDue is the earliest due time of the queued batches, zero if none.
func (o *Outbox) nextReceiptDue() time.Time {
	o.rmu.Lock()
	defer o.rmu.Unlock()
	var next time.Time
	for _, b := range o.receipts {
		if next.IsZero() || b.due.Before(next) {
			next = b.due
		}
	}
	return next
}

// flushReceipts publishes every batch that is due; one that fails is put back with a backoff.
func (o *Outbox) flushReceipts(ctx context.Context) {
	o.rmu.Lock()
	var ready []*receiptBatch
	now := o.rclock.Now()
	for k, b := range o.receipts {
		if b.due.After(now) {
			continue
		}
		ready = append(ready, b)
		delete(o.receipts, k)
		o.rqueued -= len(b.keys)
	}
	o.rmu.Unlock()

	for _, b := range ready {
		for len(b.keys) > 0 {
			n := min(len(b.keys), mail.MaxReceiptKeys)
			if err := o.publishReceipt(ctx, b, b.keys[:n]); err != nil {
				if ctx.Err() != nil {
					return
				}
				o.c.publishErrors.Add(1)
				b.failures++
				b.due = o.rclock.Now().Add(min(time.Second<<min(b.failures-1, 20), maxPublishBackoff))
				o.log.Warn("outbox: receipt not published, will retry", "keys", len(b.keys), "err", err)
				o.log.Debug("outbox: receipt not published", "to", b.to)
				o.requeue(b)
				break
			}
			b.keys = b.keys[n:]
		}
	}
}

// requeue puts a batch that could not be sent back, merging with what was queued meanwhile.
func (o *Outbox) requeue(b *receiptBatch) {
	k := receiptKey{b.from.Address().String(), b.to.String()}
	o.rmu.Lock()
	defer o.rmu.Unlock()
	if cur := o.receipts[k]; cur != nil {
		have := make(map[[32]byte]struct{}, len(b.keys))
		for _, key := range b.keys {
			have[key] = struct{}{}
		}
		for _, key := range cur.keys {
			if _, ok := have[key]; !ok {
				have[key] = struct{}{}
				b.keys = append(b.keys, key)
			}
		}
		o.rqueued -= len(cur.keys)
		b.ttl = max(b.ttl, cur.ttl)
		b.due = minTime(b.due, cur.due)
	}
	if o.rqueued+len(b.keys) > maxQueuedReceipts {
		drop := o.rqueued + len(b.keys) - maxQueuedReceipts
		drop = min(drop, len(b.keys))
		b.keys = slices.Clone(b.keys[drop:])
		o.c.receiptsDropped.Add(uint64(drop))
	}
	b.set = make(map[[32]byte]struct{}, len(b.keys))
	for _, key := range b.keys {
		b.set[key] = struct{}{}
	}
	if len(b.keys) == 0 {
		delete(o.receipts, k)
		return
	}
	o.receipts[k] = b
	o.rqueued += len(b.keys)
}

func (o *Outbox) publishReceipt(ctx context.Context, b *receiptBatch, keys [][32]byte) error {
	content, err := mail.EncodeReceipt(keys)
	if err != nil {
		return err
	}
	ttl := min(max(b.ttl, o.params.DefaultChatTTL), o.params.DefaultMailTTL)
	payload, err := seal.Seal(b.from, b.to, o.params.ID, seal.KindReceipt, o.now(), content)
	if err != nil {
		return err
	}
	job := &Job{Rcpt: b.to.String(), Kind: seal.KindReceipt, Block: 1, Blocks: 1}
	if _, err := o.publishPayload(ctx, job, b.to, payload, ttl); err != nil {
		return err
	}
	o.c.receiptsSent.Add(1)
	o.c.receiptKeysSent.Add(uint64(len(keys)))
	o.log.Debug("outbox: receipt sent", "to", b.to, "keys", len(keys))
	return nil
}
