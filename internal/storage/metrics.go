package storage

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
)

// Collectors are the provider's Prometheus metrics (docs/api.md): counts and sizes only, never a
// prefix, a key or an address.
func (p *Provider) Collectors() []prometheus.Collector {
	c := &p.ctr
	g := func(f func(Stats) float64) func() float64 { return func() float64 { return f(p.Stats()) } }
	return []prometheus.Collector{
		metrics.Counter("storage_blocks_stored", "Blocks stored for subscriptions (one per matching subscription).", c.stored.Load),
		metrics.Counter("storage_bytes_stored", "Block bytes stored for subscriptions.", c.storedBytes.Load),
		metrics.Counter("storage_blocks_refused", "Blocks refused at a subscription's quota or the disk cap.", c.refusedQuota.Load),
		metrics.Counter("storage_blocks_released", "Stored blocks deleted by release or retention.", c.released.Load),
		metrics.Counter("storage_blocks_fetched", "Stored blocks served by fetch.", c.fetched.Load),
		metrics.Counter("storage_push_dropped", "Pushes dropped for a slow watcher (the client fetches them).", c.pushDropped.Load),
		metrics.Counter("storage_subscriptions_created", "Subscriptions created.", c.created.Load),
		metrics.Counter("storage_grants", "Operator grants issued.", c.grants.Load),
		metrics.Counter("storage_grants_refused", "Subscriptions refused for an unknown or used grant.", c.grantRefused.Load),
		metrics.Counter("storage_auth", "Successful subscription authentications.", c.authOK.Load),
		metrics.Counter("storage_auth_failed", "Failed subscription authentications.", c.authFail.Load),
		metrics.Counter("storage_published", "Client blocks published by this public node.", c.published.Load),
		metrics.Counter("storage_publish_refused", "Client blocks refused (PoW, rate limit, invalid).", c.publishRefused.Load),
		metrics.Gauge("storage_subscriptions", "Subscriptions by state.", g(func(s Stats) float64 { return float64(s.Pending) }), "state", "pending"),
		metrics.Gauge("storage_subscriptions", "Subscriptions by state.", g(func(s Stats) float64 { return float64(s.Active) }), "state", "active"),
		metrics.Gauge("storage_subscriptions", "Subscriptions by state.", g(func(s Stats) float64 { return float64(s.Expired) }), "state", "expired"),
		metrics.Gauge("storage_used_bytes", "Block bytes stored now.", g(func(s Stats) float64 { return float64(s.StoredBytes) })),
		metrics.Gauge("storage_cap_bytes", "The provider's disk cap.", g(func(s Stats) float64 { return float64(s.CapBytes) })),
		metrics.Panics("storage_prune", c.panics.Load),
	}
}
