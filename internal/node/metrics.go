package node

import (
	"context"
	"time"

	"github.com/tanglemail/tanglemail/internal/web"
)

// Metrics are the node's counters and gauges for GET /metrics; it implements web.Backend. They count
// blocks, envelopes and messages, never what is in them or whom they are for.
func (n *Node) Metrics() []web.Metric {
	var ms []web.Metric
	gauge := func(name, help string, v float64, labels ...[2]string) {
		ms = append(ms, web.Metric{Name: "tanglemail_" + name, Help: help, Type: "gauge", Value: v, Labels: labels})
	}
	counter := func(name, help string, v uint64, labels ...[2]string) {
		ms = append(ms, web.Metric{Name: "tanglemail_" + name + "_total", Help: help, Type: "counter", Value: float64(v), Labels: labels})
	}
	b := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	gauge("uptime_seconds", "Seconds since the node started.", time.Since(n.started).Seconds())

	p := n.net.Status()
	gauge("peers", "Connected peers.", float64(len(p.Peers)))
	gauge("banned_peers", "Peers banned for misbehaviour now.", float64(len(p.Banned)))
	gauge("synced", "1 once a catch-up with a peer has completed (or there is no peer to catch up with).", b(p.Synced))
	gauge("blocks", "Blocks in the block store, by solidity.", float64(p.Solid), [2]string{"state", "solid"})
	gauge("blocks", "Blocks in the block store, by solidity.", float64(p.Unsolid), [2]string{"state", "unsolid"})
	gauge("blocks_missing_parents", "Parents referenced but not stored (and not given up).", float64(p.Missing))
	gauge("block_store_bytes", "Total size of the stored blocks.", float64(p.StoreBytes))
	counter("p2p_bytes", "Stream payload bytes exchanged with peers.", uint64(max(p.BytesIn, 0)), [2]string{"direction", "in"})
	counter("p2p_bytes", "Stream payload bytes exchanged with peers.", uint64(max(p.BytesOut, 0)), [2]string{"direction", "out"})

	prog := n.outbox.Progress()
	gauge("outbox_pow_jobs", "Blocks whose proof of work is being ground now.", float64(len(prog.Jobs)))
	gauge("outbox_waiting_for_peers", "1 while due work is held back for want of peers.", b(prog.WaitingForPeers))
	gauge("outbox_queued_receipt_keys", "Receipt keys waiting to be sent.", float64(prog.QueuedReceipts))
	o := n.outbox.Stats()
	counter("outbox_sealed", "Recipients sealed.", o.Sealed)
	counter("outbox_published", "Blocks published (mail, chat, chunks).", o.Published)
	counter("outbox_republished", "Recipients published again for want of a receipt.", o.Republished)
	counter("outbox_publish_errors", "Failed publish attempts (retried).", o.PublishErrors)
	counter("outbox_delivered", "Recipients whose receipt arrived.", o.Delivered)
	counter("outbox_failed", "Recipients given up (each with a bounce).", o.Failed)
	counter("outbox_receipts_sent", "Receipt envelopes published.", o.ReceiptsSent)
	counter("outbox_receipts_dropped", "Receipt keys dropped because the queue was full.", o.ReceiptsDropped)
	counter("outbox_receipts_ignored", "Received receipt keys that named nothing of ours or came from the wrong sender.", o.ReceiptsIgnored)
	counter("outbox_notes_sent", "Chat typing and read notices published.", o.NotesSent)

	in := n.inbox.Stats()
	counter("inbox_blocks", "Blocks handed to the inbox.", in.Blocks)
	counter("inbox_trial_opens", "Blocks that passed the tag check and were trial-opened.", in.TagMatches)
	counter("inbox_opened", "Envelopes opened.", in.Opened)
	counter("inbox_rejected", "Opened envelopes rejected, by reason.", in.Malformed, [2]string{"reason", "malformed"})
	counter("inbox_rejected", "Opened envelopes rejected, by reason.", in.BadSignature, [2]string{"reason", "bad_signature"})
	counter("inbox_rejected", "Opened envelopes rejected, by reason.", in.Stale, [2]string{"reason", "stale"})
	counter("inbox_filed", "Mail and chat messages filed.", in.Filed)
	counter("inbox_duplicates", "Envelopes that arrived again (receipted again, not filed).", in.Duplicates)
	counter("inbox_failed", "Store errors while filing (the sender retries).", in.Failed)
	counter("inbox_receipts", "Receipts received.", in.ReceiptsIn)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if mbs, err := n.mail.Mailboxes(ctx); err == nil {
		for _, mb := range mbs {
			gauge("mailbox_messages", "Messages per mailbox.", float64(mb.Messages), [2]string{"mailbox", mb.Name})
			gauge("mailbox_unseen", "Messages without \\Seen per mailbox.", float64(mb.Unseen), [2]string{"mailbox", mb.Name})
		}
	}
	return ms
}
