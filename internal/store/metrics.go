package store

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
)

var (
	descMailboxMessages = prometheus.NewDesc(metrics.Prefix+"mailbox_messages", "Messages per mailbox.",
		[]string{"mailbox"}, nil)
	descMailboxUnseen = prometheus.NewDesc(metrics.Prefix+"mailbox_unseen", "Messages without \\Seen per mailbox.",
		[]string{"mailbox"}, nil)
	descCommits = prometheus.NewDesc(metrics.Prefix+"store_commits_total",
		"Write transactions committed by the mailbox store (each one fsync).", nil, nil)
	descWrites = prometheus.NewDesc(metrics.Prefix+"store_writes_total",
		"Writes committed by the mailbox store; above store_commits_total when group commit shared an fsync.", nil, nil)
)

// mailboxCollector reads the mailboxes' counts at each scrape.
type mailboxCollector struct{ s *Store }

// Collector is the store's metrics (docs/api.md): messages and unseen messages per mailbox, read at
// each scrape (one read transaction, at most 5 s; a failed read gives no samples), and the write
// transactions and writes committed.
func (s *Store) Collector() prometheus.Collector { return mailboxCollector{s} }

func (c mailboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMailboxMessages
	ch <- descMailboxUnseen
	ch <- descCommits
	ch <- descWrites
}

func (c mailboxCollector) Collect(ch chan<- prometheus.Metric) {
	commits, writes := c.s.WriteStats()
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(commits))
	ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(writes))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mbs, err := c.s.Mailboxes(ctx)
	if err != nil {
		return
	}
	for _, mb := range mbs {
		ch <- prometheus.MustNewConstMetric(descMailboxMessages, prometheus.GaugeValue, float64(mb.Messages), mb.Name)
		ch <- prometheus.MustNewConstMetric(descMailboxUnseen, prometheus.GaugeValue, float64(mb.Unseen), mb.Name)
	}
}
