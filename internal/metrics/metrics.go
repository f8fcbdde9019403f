// Package metrics holds the conventions of tanglemail's Prometheus metrics (github.com/prometheus/
// client_golang): every name starts with "tanglemail_", counters end in "_total", and every metric is
// read from the counters of the component that counts them when it is scraped. The metrics themselves
// are declared in the packages that count them (outbox, inbox, chat, store, node), as collectors built
// per instance, because one process may run several nodes (devnet, tests): node registers its engines'
// collectors in a prometheus.Registry of its own, which GET /metrics serves. docs/api.md lists the
// names.
//
// No metric carries message content or an address; labels are fixed words (a state, a reason, a
// loop) or mailbox names.
package metrics

import "github.com/prometheus/client_golang/prometheus"

// Prefix starts every metric name.
const Prefix = "tanglemail_"

// Counter is a counter named Prefix+name+"_total", read from f at each scrape. labels are constant
// label pairs: name, value, name, value, ….
func Counter(name, help string, f func() uint64, labels ...string) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: Prefix + name + "_total", Help: help,
		ConstLabels: constLabels(labels)}, func() float64 { return float64(f()) })
}

// Gauge is a gauge named Prefix+name, read from f at each scrape; labels as for Counter.
func Gauge(name, help string, f func() float64, labels ...string) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: Prefix + name, Help: help,
		ConstLabels: constLabels(labels)}, f)
}

// Panics is tanglemail_panics_total{loop=name}: the panics recovered in a background loop (package
// supervise), read from f.
func Panics(loop string, f func() uint64) prometheus.Collector {
	return Counter("panics", "Panics recovered in a background loop (which was restarted), by loop.", f, "loop", loop)
}

// Bool is 1 for true and 0 for false, for gauges of a condition.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func constLabels(kv []string) prometheus.Labels {
	if len(kv) == 0 {
		return nil
	}
	l := prometheus.Labels{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}
