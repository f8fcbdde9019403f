package light

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
)

// Collectors are the client's metrics (docs/api.md), labelled with the provider's name.
func (c *Client) Collectors() []prometheus.Collector {
	k := &c.c
	l := []string{"provider", c.cfg.Name}
	return []prometheus.Collector{
		metrics.Gauge("light_connected", "1 while a session with the storage provider is up.",
			func() float64 { return metrics.Bool(c.current() != nil) }, l...),
		metrics.Counter("light_blocks_fetched", "Stored blocks fetched from the provider.", k.fetched.Load, l...),
		metrics.Counter("light_blocks_pushed", "Blocks pushed live by the provider.", k.pushed.Load, l...),
		metrics.Counter("light_bytes_received", "Block bytes received from the provider.", k.bytes.Load, l...),
		metrics.Counter("light_duplicates", "Blocks dropped as already handed over.", k.dups.Load, l...),
		metrics.Counter("light_invalid", "Blocks from the provider that failed validation.", k.invalid.Load, l...),
		metrics.Counter("light_filed", "Blocks handed to the inbox.", k.filed.Load, l...),
		metrics.Counter("light_sessions", "Sessions started (connects and reconnects).", k.sessions.Load, l...),
		metrics.Counter("light_published", "Blocks the provider published for us.", k.published.Load, l...),
		metrics.Counter("light_refused", "Blocks the provider refused to publish.", k.refused.Load, l...),
		metrics.Gauge("light_quota_used_ratio", "Share of the subscription's quota in use.",
			func() float64 { return float64(c.Status().Usage.Percent()) / 100 }, l...),
	}
}
