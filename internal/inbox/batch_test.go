package inbox_test

import (
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/inbox"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestProcessBatch: bob is off the network while alice sends five mails; long after their TTL a storage
// node hands him every block of the network twice (his mail, alice's own traffic): each mail is filed
// exactly once, expired or not, and a restart does not file them again.
func TestProcessBatch(t *testing.T) {
	net, clk, dir := newNetwork(tangle.BenchNet), newClock(), t.TempDir()
	alice := startNode(t, net, clk, "alice", newIdentity(t, 1, 8), dir)
	bob := startNode(t, net, clk, "bob", newIdentity(t, 2, 8), dir)
	net.detach(bob.in)
	rc := bob.id.Address().Mail()
	for i := range 5 {
		alice.submit(t, mailFrom(alice.id, bob.id, "batch-"+string(rune('a'+i)), "stored\r\n"), rc)
	}
	waitFor(t, wait, "alice to publish five mails", func() bool { return len(net.published()) >= 5 })
	clk.Advance(time.Duration(tangle.BenchNet.DefaultMailTTL+3600) * time.Second)
	blocks := net.published()
	if !blocks[0].Expired(clk.Now()) {
		t.Fatal("the stored blocks should be past their TTL")
	}
	batch := append(append([]*tangle.Block(nil), blocks...), blocks...)
	ctx := testCtx(t)
	outs, err := bob.in.ProcessBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	count := map[inbox.Outcome]int{}
	for _, o := range outs {
		count[o]++
	}
	if count[inbox.Filed] != 5 || count[inbox.Duplicate] != 5 {
		t.Fatalf("outcomes %v, want 5 filed and 5 duplicates", count)
	}
	if raws, _ := bob.mailbox(t, store.RoleInbox); len(raws) != 5 {
		t.Fatalf("bob's INBOX has %d messages, want 5", len(raws))
	}
	bob.close()
	bob = startNode(t, net, clk, "bob", bob.id, dir)
	net.detach(bob.in)
	outs, err = bob.in.ProcessBatch(ctx, blocks)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		if o == inbox.Filed {
			t.Fatalf("block %d filed again after a restart", i)
		}
	}
	if raws, _ := bob.mailbox(t, store.RoleInbox); len(raws) != 5 {
		t.Fatalf("after restart bob's INBOX has %d messages, want 5", len(raws))
	}
	if outs, err := bob.in.ProcessBatch(ctx, nil); err != nil || len(outs) != 0 {
		t.Fatalf("empty batch: %v, %v", outs, err)
	}
}
