package inbox

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
)

// Collectors are the inbox's metrics (docs/api.md), read from its counters at each scrape. The node
// registers them in its registry.
func (in *Inbox) Collectors() []prometheus.Collector {
	c := &in.c
	const rejected = "Opened envelopes rejected, by reason."
	return []prometheus.Collector{
		metrics.Counter("inbox_blocks", "Blocks handed to the inbox.", c.blocks.Load),
		metrics.Counter("inbox_trial_opens", "Blocks that passed the tag check and were trial-opened.", c.tagMatches.Load),
		metrics.Counter("inbox_opened", "Envelopes opened.", c.opened.Load),
		metrics.Counter("inbox_rejected", rejected, c.malformed.Load, "reason", "malformed"),
		metrics.Counter("inbox_rejected", rejected, c.badSig.Load, "reason", "bad_signature"),
		metrics.Counter("inbox_rejected", rejected, c.stale.Load, "reason", "stale"),
		metrics.Counter("inbox_filed", "Mail and chat messages filed.", c.filed.Load),
		metrics.Counter("inbox_duplicates", "Envelopes that arrived again (receipted again, not filed).", c.dups.Load),
		metrics.Counter("inbox_failed", "Store errors while filing (the sender retries).", c.failed.Load),
		metrics.Counter("inbox_receipts", "Receipts received.", c.receiptsIn.Load),
		metrics.Panics("inbox", c.panics.Load),
	}
}
