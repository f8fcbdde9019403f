package node

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// BenchmarkLightBytes compares the bytes a light client receives in a day with a full node's, under
// synthetic traffic to 1,000 random addresses with 8 tag bits (issue 9). A day per address: 10 mails
// (4 KiB size bucket), 10 delivery receipts (256 B), 40 chat messages (1 KiB) and their 40 receipts.
// The full node receives every block once (a lower bound: gossip duplicates and control traffic are not
// counted); the light client receives, as storage-protocol push frames encoded by the real codec
// (internal/storage/wire, protocol.md §12), exactly the blocks whose route tag matches its 8-bit prefix.
// Reported: full-MiB/day, light-KiB/day and ratio (goal ≤ 1/50 = 0.02).
//
//	go test -run '^$' -bench LightBytes -benchtime 1x ./internal/node/
func BenchmarkLightBytes(b *testing.B) {
	const addresses, tagBits = 1000, 8
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]identity.Address, addresses)
	for i := range ids {
		id, err := identity.Generate(tagBits)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id.Address()
	}
	me := ids[0]
	var myTag tangle.Tag
	tk := me.TagKey()
	copy(myTag[:], tk[:])
	prefix := wire.PrefixOf(myTag, tagBits)
	kinds := []struct{ count, size int }{{10, 4096}, {10, 256}, {40, 1024}, {40, 256}}
	payload := make([]byte, 4096)
	ctx := context.Background()
	var full, light, lightBlocks, blocks int64
	b.ResetTimer()
	for range b.N {
		full, light, lightBlocks, blocks = 0, 0, 0, 0
		for _, to := range ids {
			for _, k := range kinds {
				for range k.count {
					tag := to.MakeTag(nil)
					blk, err := tangle.BenchNet.Build(ctx, tangle.Header{
						Time: time.Now().UnixMilli(), TTL: tangle.MinTTL,
						Parents: []tangle.ID{tangle.Genesis, {byte(rng.Uint32())}}, Tag: tag,
						PayloadType: tangle.PayloadSealed, Payload: payload[:k.size],
					})
					if err != nil {
						b.Fatal(err)
					}
					blocks++
					full += int64(len(blk.Raw))
					if prefix.Matches(blk.Tag) {
						frame, err := wire.Encode(wire.MsgPush{P: wire.Pushed{Cursor: wire.Cursor(blocks), Block: blk.Raw}})
						if err != nil {
							b.Fatal(err)
						}
						light += int64(len(frame))
						lightBlocks++
					}
				}
			}
		}
	}
	b.StopTimer()
	ratio := float64(light) / float64(full)
	b.ReportMetric(float64(full)/(1<<20), "full-MiB/day")
	b.ReportMetric(float64(light)/(1<<10), "light-KiB/day")
	b.ReportMetric(ratio, "ratio")
	b.Logf("%d blocks a day, %d for the light client's prefix; ratio %.5f (1/%.0f)", blocks, lightBlocks, ratio, 1/ratio)
	if ratio > 1.0/50 {
		b.Errorf("ratio %.4f above the goal of 1/50", ratio)
	}
}
