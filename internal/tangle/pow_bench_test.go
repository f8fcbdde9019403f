package tangle

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

// Benchmarks of protocol.md §3. Suggested run (each PoW op is one full grind on one core):
//
//	go test -run '^$' -bench 'PoW|BLAKE2b|Grind|Verify' -benchtime=30x ./internal/tangle
//
// BenchmarkPoW* report the median and mean wall time per grind; the median of a geometric number of
// hashes with mean W is ≈ ln 2 · W, so it sits well below the mean.

// benchHeader is a block with payloadSize bytes of sealed payload and 4 parents, issued at time t.
func benchHeader(p *Params, payloadSize int, ttl uint32, t int64) Header {
	h := Header{
		Network:     p.ID,
		Time:        t,
		TTL:         ttl,
		Parents:     make([]ID, 4),
		PayloadType: PayloadSealed,
		Payload:     make([]byte, payloadSize),
	}
	for i := range h.Parents {
		h.Parents[i] = blake2b.Sum256([]byte{byte(i)})
	}
	for i := range h.Payload {
		h.Payload[i] = byte(i * 131)
	}
	return h
}

// benchGrind grinds b.N fresh blocks (the issuing time differs per op) on one worker and reports the
// median and mean time per grind in unit ("s" or "ms").
func benchGrind(b *testing.B, payloadSize int, ttl uint32, unit string) {
	p := MainNet
	h := benchHeader(&p, payloadSize, ttl, 1_767_225_600_000)
	raw, err := h.Encode()
	if err != nil {
		b.Fatal(err)
	}
	w := p.Work(len(raw), ttl)
	ctx := context.Background()
	durs := make([]time.Duration, 0, b.N)
	var hashes uint64
	b.ResetTimer()
	for i := range b.N {
		binary.LittleEndian.PutUint64(raw[offTime:], uint64(h.Time)+uint64(i)) // a fresh block per op
		start := time.Now()
		nonce, err := p.Grind(ctx, raw, WithWorkers(1))
		durs = append(durs, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		hashes += nonce + 1 // one worker scans 0, 1, … and stops at the first hit
	}
	b.StopTimer()
	if err := p.CheckPoW(raw); err != nil {
		b.Fatal(err)
	}
	slices.Sort(durs)
	var median time.Duration
	if n := len(durs); n%2 == 1 {
		median = durs[n/2]
	} else {
		median = (durs[n/2-1] + durs[n/2]) / 2
	}
	var sum time.Duration
	for _, d := range durs {
		sum += d
	}
	mean := sum / time.Duration(len(durs))
	scale := 1.0
	if unit == "ms" {
		scale = 1e3
	}
	b.ReportMetric(median.Seconds()*scale, "median-"+unit)
	b.ReportMetric(mean.Seconds()*scale, "mean-"+unit)
	b.ReportMetric(float64(w), "W")
	b.ReportMetric(float64(len(raw)), "bytes")
	b.ReportMetric(float64(hashes)/float64(b.N), "hashes/op")
	b.ReportMetric(float64(hashes)/sum.Seconds(), "hashes/s")
}

// BenchmarkPoWMail4KiB: 4 KiB payload, 4 parents, MainNet, default mail TTL, one worker. Target: median ≤ 1 s.
func BenchmarkPoWMail4KiB(b *testing.B) {
	benchGrind(b, 4096, MainNet.DefaultMailTTL, "s")
}

// BenchmarkPoWChat300B: 300 B payload, 4 parents, MainNet, default chat TTL, one worker. Target: median ≤ 50 ms.
func BenchmarkPoWChat300B(b *testing.B) {
	benchGrind(b, 300, MainNet.DefaultChatTTL, "ms")
}

var sinkSum [32]byte

// BenchmarkBLAKE2b256_40B is the baseline: blake2b.Sum256 on a stack [40]byte, as in the grinder.
func BenchmarkBLAKE2b256_40B(b *testing.B) {
	var buf [40]byte
	copy(buf[:32], []byte("tanglemail benchmark pow digest."))
	var acc byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		binary.LittleEndian.PutUint64(buf[32:], uint64(i))
		s := blake2b.Sum256(buf[:])
		acc ^= s[0]
	}
	b.StopTimer()
	sinkSum[0] = acc
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// grindRateHashes is the fixed number of hashes per BenchmarkGrindRate op.
const grindRateHashes = 1 << 20

// BenchmarkGrindRate runs the grinder over exactly grindRateHashes nonces per op with target 0, which no
// nonce meets in practice (probability 2^-64 per hash), and reports hashes/s overall and per worker.
func BenchmarkGrindRate(b *testing.B) {
	benchGrindRate(b)
}

// BenchmarkGrindRateYieldIdle is BenchmarkGrindRate with a WithYield hook that is never busy, shaped
// like the node's (an atomic load and a monotonic clock reading): the cost of the hook on an idle node.
func BenchmarkGrindRateYieldIdle(b *testing.B) {
	base := time.Now()
	var last atomic.Int64
	busy := func() bool {
		l := last.Load()
		return l != 0 && int64(time.Since(base))-l < int64(time.Second)
	}
	benchGrindRate(b, WithYield(busy))
}

func benchGrindRate(b *testing.B, opts ...GrindOption) {
	d := blake2b.Sum256([]byte("tanglemail benchmark pow digest"))
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			cfg := newGrindConfig(append([]GrindOption{WithWorkers(workers)}, opts...))
			b.ReportAllocs()
			b.ResetTimer()
			var total uint64
			for range b.N {
				_, n, err := grind(context.Background(), newGrinder(&d, 0, grindRateHashes), 0, cfg)
				if err != errNonceLimit || n != grindRateHashes {
					b.Fatalf("grind: %d hashes, err %v", n, err)
				}
				total += n
			}
			b.StopTimer()
			rate := float64(total) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "hashes/s")
			b.ReportMetric(rate/float64(workers), "hashes/s/worker")
		})
	}
}

var verifyBlock = sync.OnceValues(func() ([]byte, error) {
	p := MainNet
	blk, err := p.Build(context.Background(), benchHeader(&p, 4096, p.DefaultMailTTL, 1_767_225_600_000))
	if err != nil {
		return nil, err
	}
	return blk.Raw, nil
})

// BenchmarkVerifyPoW4KiB is the receiver's cost: CheckPoW on a valid 4 KiB mail block (one hash of the
// block, one 40-byte hash).
func BenchmarkVerifyPoW4KiB(b *testing.B) {
	raw, err := verifyBlock()
	if err != nil {
		b.Fatal(err)
	}
	p := MainNet
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := p.CheckPoW(raw); err != nil {
			b.Fatal(err)
		}
	}
}
