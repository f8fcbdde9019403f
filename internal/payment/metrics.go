package payment

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
)

// verifierCounters count Process outcomes (no transaction hash, subscription or address).
type verifierCounters struct {
	verified, fresh, retry, refused, activateFailed atomic.Uint64
}

func (c *verifierCounters) note(err error, fresh bool) {
	switch {
	case err == nil:
		c.verified.Add(1)
		if fresh {
			c.fresh.Add(1)
		}
	case Retryable(err):
		c.retry.Add(1)
	default:
		c.refused.Add(1)
	}
}

// Collectors are the payment verifier's Prometheus metrics (docs/api.md, "Payments").
func (v *Verifier) Collectors() []prometheus.Collector {
	c := &v.ctr
	return []prometheus.Collector{
		metrics.Counter("payment_verified", "Payments verified on chain (a payment submitted again counts again).", c.verified.Load),
		metrics.Counter("payment_counted", "Payments counted for the first time (each activates a subscription once).", c.fresh.Load),
		metrics.Counter("payment_pending", "Verifications answered 'not yet' (pending, too few confirmations, endpoint down).", c.retry.Load),
		metrics.Counter("payment_refused", "Payments refused (underpaid, wrong recipient, reverted, counted before, …).", c.refused.Load),
		metrics.Counter("payment_activation_failed", "Counted payments whose activation failed (retried at restart).", c.activateFailed.Load),
	}
}
