package outbox

import (
	"context"
	"slices"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/seal"
)

// Receipts to send are kept in memory only, batched per (our identity, their address). Losing them in a
// crash loses nothing: the sender, without a receipt, publishes the envelope again, the inbox sees a
// duplicate, and a duplicate triggers a receipt again (see the package notes).

type receiptKey struct {
	from string // our identity's address
	to   string
}

type receiptBatch struct {
	from      *identity.Identity
	to        identity.Address
	keys      [][32]byte
	set       map[[32]byte]struct{}
	ttl       uint32
	notBefore time.Time // backoff after a failed publish (real time)
	failures  int
}

// SendReceipt queues a receipt from `from` (the identity an envelope was sealed to) to `to` (its verified
// sender) acknowledging keys, to be published in a block of TTL ttl (at least; a batch takes the
// longest TTL asked for). It never blocks: the inbox calls it on its hot path. Keys already queued for
// the same pair are merged; when the queue is full, keys are dropped (and counted): their senders will
// publish again and be acknowledged then.
func (o *Outbox) SendReceipt(from *identity.Identity, to identity.Address, keys [][32]byte, ttl uint32) {
	if from == nil || len(keys) == 0 {
		return
	}
	k := receiptKey{from.Address().String(), to.String()}
	o.rmu.Lock()
	b := o.receipts[k]
	if b == nil {
		b = &receiptBatch{from: from, to: to, set: map[[32]byte]struct{}{}}
		o.receipts[k] = b
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

// receiptLoop publishes queued receipts: after a short delay that lets a burst of deliveries share one
// receipt, then one envelope per batch (per MaxReceiptKeys keys).
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
		// Let more receipts to the same senders arrive.
		t := time.NewTimer(o.rdelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if o.pub.PeerCount() == 0 {
			timer = time.After(peerPoll)
			peerPoll = min(2*peerPoll, maxPeerPoll)
			continue
		}
		peerPoll = minPeerPoll
		if next := o.flushReceipts(ctx); !next.IsZero() {
			timer = time.After(max(time.Until(next), 0))
		}
	}
}

// flushReceipts publishes every batch that is not backing off and returns when the earliest one that is
// becomes ready (zero if none).
func (o *Outbox) flushReceipts(ctx context.Context) time.Time {
	o.rmu.Lock()
	var ready []*receiptBatch
	var next time.Time
	now := time.Now()
	for k, b := range o.receipts {
		if b.notBefore.After(now) {
			if next.IsZero() || b.notBefore.Before(next) {
				next = b.notBefore
			}
			continue
		}
		ready = append(ready, b)
		delete(o.receipts, k)
		o.rqueued -= len(b.keys)
	}
	o.rmu.Unlock()

	for _, b := range ready {
		for len(b.keys) > 0 {
			n := min(len(b.keys), MaxReceiptKeys)
			if err := o.publishReceipt(ctx, b, b.keys[:n]); err != nil {
				if ctx.Err() != nil {
					return time.Time{}
				}
				o.c.publishErrors.Add(1)
				b.failures++
				b.notBefore = time.Now().Add(min(time.Second<<min(b.failures-1, 20), maxPublishBackoff))
				o.log.Warn("outbox: receipt not published, will retry", "to", b.to, "keys", len(b.keys), "err", err)
				o.requeue(b)
				if next.IsZero() || b.notBefore.Before(next) {
					next = b.notBefore
				}
				break
			}
			b.keys = b.keys[n:]
		}
	}
	return next
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
	content, err := EncodeReceipt(keys)
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
