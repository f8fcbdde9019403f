package storage

import (
	"context"
	"crypto/ed25519"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// BenchmarkStorageSubscriptions: a provider with 100 active subscriptions (distinct 12-bit prefixes),
// each receiving 1,000 blocks of about 1 KiB through Offer in batches of 256 interleaved across
// subscriptions, then every subscription fetched once in pages of 512. Reports the Go heap in use after
// a GC (heap-MiB, goal ≤ 200) and the process's peak resident set (rss-MiB), and stored blocks/s
// (time in Offer only; building the blocks is not timed).
func BenchmarkStorageSubscriptions(b *testing.B) {
	const subs, perSub, batch = 100, 1000, 256
	params := benchParams()
	for range b.N {
		b.StopTimer()
		p, err := Open(Config{Dir: b.TempDir(), Params: params, CapBytes: 4 << 30, MaxPerAddr: subs + 1, MaxPerKey: 1})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		prefixes := make([]wire.Prefix, subs)
		ids := make([]wire.SubID, subs)
		for i := range subs {
			prefixes[i] = wire.Prefix{Bits: 12, Tag: [8]byte{byte(i >> 4), byte(i<<4) & 0xf0}}
			tok, err := p.Grant(ctx, 16, 30)
			if err != nil {
				b.Fatal(err)
			}
			pub, _, _ := ed25519.GenerateKey(nil)
			ids[i], _, err = p.create(ctx, wire.CreateRequest{Prefix: prefixes[i], QuotaMiB: 16, Key: pub, Grant: tok}, "bench")
			if err != nil {
				b.Fatal(err)
			}
		}
		now := time.Now()
		var ingest time.Duration
		var pending []*tangle.Block
		for j := range perSub {
			for i := range subs {
				pending = append(pending, mkBlock(b, params, tagWith(prefixes[i]), 1024, now))
				if len(pending) == batch || (j == perSub-1 && i == subs-1) {
					b.StartTimer()
					start := time.Now()
					if err := p.Offer(ctx, pending); err != nil {
						b.Fatal(err)
					}
					ingest += time.Since(start)
					b.StopTimer()
					pending = pending[:0]
				}
			}
		}
		b.StartTimer()
		for _, id := range ids {
			var after wire.Cursor
			n := 0
			for {
				page, err := p.fetch(ctx, id, after, 512, 4<<20)
				if err != nil {
					b.Fatal(err)
				}
				n += len(page.Blocks)
				after = page.Next
				if !page.More {
					break
				}
			}
			if n != perSub {
				b.Fatalf("fetched %d blocks, want %d", n, perSub)
			}
		}
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(rssMiB(), "rss-MiB")
		b.ReportMetric(float64(subs*perSub)/ingest.Seconds(), "stored-blocks/s")
		p.Close()
	}
}

// rssMiB is the process's peak resident set (VmHWM), in MiB; 0 where /proc is missing.
func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
