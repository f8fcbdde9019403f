package outbox

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
)

// Collectors are the outbox's metrics (docs/api.md), read from its counters at each scrape. The node
// registers them in its registry.
func (o *Outbox) Collectors() []prometheus.Collector {
	c := &o.c
	return []prometheus.Collector{
		metrics.Gauge("outbox_pow_jobs", "Blocks whose proof of work is being ground now.",
			func() float64 { return float64(len(o.Progress().Jobs)) }),
		metrics.Gauge("outbox_waiting_for_peers", "1 while due work is held back for want of peers.",
			func() float64 { return metrics.Bool(o.Progress().WaitingForPeers) }),
		metrics.Gauge("outbox_queued_receipt_keys", "Receipt keys waiting to be sent.",
			func() float64 { return float64(o.Progress().QueuedReceipts) }),
		metrics.Counter("outbox_sealed", "Recipients sealed.", c.sealed.Load),
		metrics.Counter("outbox_published", "Blocks published (mail, chat, chunks).", c.published.Load),
		metrics.Counter("outbox_republished", "Recipients published again for want of a receipt.", c.republished.Load),
		metrics.Counter("outbox_publish_errors", "Failed publish attempts (retried).", c.publishErrors.Load),
		metrics.Counter("outbox_delivered", "Recipients whose receipt arrived.", c.delivered.Load),
		metrics.Counter("outbox_delayed", "Recipients past their TTL without a receipt, in the grace period (a delay notice for mail).", c.delayed.Load),
		metrics.Counter("outbox_failed", "Recipients given up (each with a bounce).", c.failed.Load),
		metrics.Counter("outbox_receipts_sent", "Receipt envelopes published.", c.receiptsSent.Load),
		metrics.Counter("outbox_receipts_dropped", "Receipt keys dropped because the queue was full.", c.receiptsDropped.Load),
		metrics.Counter("outbox_receipts_ignored", "Received receipt keys that named nothing of ours or came from the wrong sender.",
			c.receiptsIgnored.Load),
		metrics.Counter("outbox_notes_sent", "Chat typing and read notices published.", c.notesSent.Load),
		metrics.Panics("outbox", c.queuePanics.Load),
		metrics.Panics("outbox_receipts", c.receiptPanics.Load),
	}
}
