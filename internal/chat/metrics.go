package chat

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
)

// Collectors are the chat service's metrics (docs/api.md); the node registers them in its registry.
func (s *Service) Collectors() []prometheus.Collector {
	return []prometheus.Collector{metrics.Panics("chat", s.panics.Load)}
}
