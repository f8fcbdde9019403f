package node

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/version"
)

// newRegistry is the node's metrics registry for GET /metrics: its build (tanglemail_build_info), its uptime, the p2p layer's status, and
// the collectors declared by the engines and the store, which count them. Each node has its own
// registry, so that several nodes in one process (devnet, tests) do not mix their counts. The metrics
// count blocks, envelopes and messages, never what is in them or whom they are for.
func (n *Node) newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	v := version.Get()
	reg.MustRegister(
		metrics.Gauge("build_info", "Always 1; the labels say which build runs, with the protocol version and the network.",
			func() float64 { return 1 },
			"version", v.Version, "commit", v.Commit, "go_version", v.GoVersion, "protocol", strconv.Itoa(v.Protocol),
			"network", n.cfg.Network.Name),
		metrics.Gauge("uptime_seconds", "Seconds since the node started.", func() float64 { return time.Since(n.started).Seconds() }),
		n.mail.Collector(),
	)
	if n.net != nil {
		reg.MustRegister(p2pCollector{n.net})
	}
	for _, c := range n.light.clients {
		reg.MustRegister(c.Collectors()...)
	}
	if len(n.light.clients) > 0 {
		reg.MustRegister(n.subscriptionCollectors()...)
	}
	reg.MustRegister(n.outbox.Collectors()...)
	reg.MustRegister(n.inbox.Collectors()...)
	reg.MustRegister(n.chat.Collectors()...)
	return reg
}

// Metrics is what GET /metrics serves (web.Backend): the node's registry, then the process-wide one
// (the login penalty's counters, shared by every node of the process, and the Go runtime's go_* and
// process_* metrics).
func (n *Node) Metrics() prometheus.Gatherer {
	return prometheus.Gatherers{n.metrics, prometheus.DefaultGatherer}
}

// p2pCollector turns one p2p.Node.Status per scrape into the network's metrics (package p2p keeps
// the counts; its status is what it exports).
type p2pCollector struct{ net *p2p.Node }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metrics.Prefix+name, help, labels, nil)
}

var (
	descPeers         = desc("peers", "Connected peers.")
	descBanned        = desc("banned_peers", "Peers banned for misbehaviour now.")
	descSynced        = desc("synced", "1 once a catch-up with a peer has completed (or there is no peer to catch up with).")
	descBlocks        = desc("blocks", "Blocks in the block store, by solidity.", "state")
	descMissing       = desc("blocks_missing_parents", "Parents referenced but not stored (and not given up).")
	descStoreBytes    = desc("block_store_bytes", "Total size of the stored blocks.")
	descP2PBytesTotal = desc("p2p_bytes_total", "Stream payload bytes exchanged with peers.", "direction")
)

func (p2pCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeers, descBanned, descSynced, descBlocks, descMissing, descStoreBytes, descP2PBytesTotal} {
		ch <- d
	}
}

func (c p2pCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.net.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descPeers, float64(len(p.Peers)))
	gauge(descBanned, float64(len(p.Banned)))
	gauge(descSynced, metrics.Bool(p.Synced))
	gauge(descBlocks, float64(p.Solid), "solid")
	gauge(descBlocks, float64(p.Unsolid), "unsolid")
	gauge(descMissing, float64(p.Missing))
	gauge(descStoreBytes, float64(p.StoreBytes))
	ch <- prometheus.MustNewConstMetric(descP2PBytesTotal, prometheus.CounterValue, float64(max(p.BytesIn, 0)), "in")
	ch <- prometheus.MustNewConstMetric(descP2PBytesTotal, prometheus.CounterValue, float64(max(p.BytesOut, 0)), "out")
}

// subscriptionCollectors are the subscriber's view of its storage subscriptions in /metrics, without
// provider or subscription ids (docs/api.md): when the first one ends, and the quota in use.
func (n *Node) subscriptionCollectors() []prometheus.Collector {
	usage := func() (first time.Time, used, quota uint64, active int) {
		for _, c := range n.light.clients {
			u := c.Status().Usage
			used += u.UsedBytes
			quota += u.QuotaBytes
			if u.State == "active" {
				active++
			}
			if !u.Expires.IsZero() && (first.IsZero() || u.Expires.Before(first)) {
				first = u.Expires
			}
		}
		return
	}
	return []prometheus.Collector{
		metrics.Gauge("light_subscription_paid_until_seconds",
			"Unix time at which the first of the node's storage subscriptions ends (its paid or granted period); 0 before the providers answered.",
			func() float64 {
				first, _, _, _ := usage()
				if first.IsZero() {
					return 0
				}
				return float64(first.Unix())
			}),
		metrics.Gauge("light_subscription_used_bytes", "Bytes the node's storage providers keep for it, summed over its subscriptions.",
			func() float64 { _, used, _, _ := usage(); return float64(used) }),
		metrics.Gauge("light_subscription_quota_bytes", "The node's storage quotas, summed over its subscriptions.",
			func() float64 { _, _, quota, _ := usage(); return float64(quota) }),
		metrics.Gauge("light_subscriptions_active", "The node's storage subscriptions that are active (paid or granted, not expired).",
			func() float64 { _, _, _, a := usage(); return float64(a) }),
	}
}
