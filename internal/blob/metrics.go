package blob

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
)

// Metrics counts the blob service's work; one per node, shared by its Server and Client.
type Metrics struct {
	ChunksServed  atomic.Uint64
	ChunksFetched atomic.Uint64
	BadChunks     atomic.Uint64
	Fetches       atomic.Uint64
	FetchFailures atomic.Uint64
	Retries       atomic.Uint64
	PutsStored    atomic.Uint64
	PutsSent      atomic.Uint64
	Refused       atomic.Uint64
}

// Collectors are the Prometheus collectors of m and of store s (nil: none for the store).
func (m *Metrics) Collectors(s *Store) []prometheus.Collector {
	c := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return metrics.Counter(name, help, v.Load)
	}
	out := []prometheus.Collector{
		c("blob_chunks_served", "Sealed blob chunks sent to other nodes.", &m.ChunksServed),
		c("blob_chunks_fetched", "Sealed blob chunks fetched and verified.", &m.ChunksFetched),
		c("blob_bad_chunks", "Fetched chunks refused because they failed verification.", &m.BadChunks),
		c("blob_fetches", "Blobs fetched completely.", &m.Fetches),
		c("blob_fetch_failures", "Blob fetches that failed on every route.", &m.FetchFailures),
		c("blob_fetch_retries", "Fetch attempts after a failed one (resumed or on another holder).", &m.Retries),
		c("blob_puts_stored", "Blob uploads from other nodes stored durably.", &m.PutsStored),
		c("blob_puts_sent", "Blob uploads to a provider acknowledged.", &m.PutsSent),
		c("blob_requests_refused", "Blob requests refused (unauthorized, malformed, over quota).", &m.Refused),
	}
	if s != nil {
		out = append(out,
			metrics.Gauge("blob_store_bytes", "Bytes of sealed blobs held or reserved.", func() float64 {
				u, _, _ := s.Usage()
				return float64(u)
			}),
			metrics.Gauge("blob_store_budget_bytes", "Byte budget of the blob store.", func() float64 {
				_, b, _ := s.Usage()
				return float64(b)
			}))
	}
	return out
}
