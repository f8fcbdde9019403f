package inbox_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/inbox"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// BenchmarkSubmitToInbox measures one 4 KiB mail from alice to bob in one process through the in-memory
// network, proof of work included (devnet parameters, Workers = GOMAXPROCS): submit, seal, grind,
// publish, trial-open, file. ns/op runs until alice's recipient is delivered (bob's receipt, with its own
// proof of work, is back); ms-to-inbox is until the message is filed in bob's INBOX.
//
//	go test -run '^$' -bench SubmitToInbox -benchtime 10x ./internal/inbox/
func BenchmarkSubmitToInbox(b *testing.B) {
	for _, p := range []tangle.Params{tangle.DevNet, tangle.BenchNet} {
		b.Run(p.Name, func(b *testing.B) {
			net, clk, dir := newNetwork(p), newClock(), b.TempDir()
			workers := func(o *outbox.Config, _ *inbox.Config) { o.Workers = 0 }
			alice := startNode(b, net, clk, "alice", newIdentity(b, 1, 8), dir, workers)
			bob := startNode(b, net, clk, "bob", newIdentity(b, 2, 8), dir, workers)
			rc := bob.id.Address().Mail()
			body := strings.Repeat(strings.Repeat("x", 62)+"\r\n", 4096/64)
			var toInbox time.Duration
			b.ResetTimer()
			for i := range b.N {
				raw := mailFrom(alice.id, bob.id, fmt.Sprintf("bench-%d", i), body)
				start := time.Now()
				id := alice.submit(b, raw, rc)
				waitFor(b, 5*time.Minute, "bob to file", func() bool { return bob.in.Stats().Filed == uint64(i+1) })
				toInbox += time.Since(start)
				alice.waitState(b, id, rc, store.RcptDelivered, 5*time.Minute)
			}
			b.ReportMetric(float64(toInbox.Milliseconds())/float64(b.N), "ms-to-inbox")
		})
	}
}
