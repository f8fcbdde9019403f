package dag

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Ingest benchmark setup.
//
// The blocks are real DevNet blocks (B = 100, E = 1000: W ≈ 232,000 hashes for a 1 KiB payload and a
// 1 h TTL) with valid nonces, so params.Validate runs the full path: size, version, network, the PoW
// check (one BLAKE2b of the block, one of the 40-byte nonce input), decode, field rules. Grinding 2,000
// of them takes about a minute of both cores, so the pool is ground once by a plain local loop
// (tangle.PoWDigest, PoWScore, Work, Target — not the package's grinder) and cached in the temporary
// directory; later runs read the cache and check every block's PoW before use.
const (
	ingestPool    = 2000
	ingestPayload = 1024
	ingestTTL     = 3600
	ingestFiller  = 20000 // blocks stored before timing starts, so the indexes are not tiny
)

// ingestT0 is the issuing time of the first pool block; ingestNow the benchmark's clock.
var (
	ingestT0  = t0
	ingestNow = time.UnixMilli(t0 + 10*60*1000)
)

// ingestBlocks returns the pool: a DAG where block i has up to 4 parents among the blocks of earlier
// layers (8 blocks per layer, parents from the previous 64 blocks), issued 1 ms apart.
func ingestBlocks(b *testing.B) [][]byte {
	p := tangle.DevNet
	name := fmt.Sprintf("tanglemail-dag-ingest-v1-%s-%d-%d-%d.bin", p.ID, p.WorkPerByte, ingestPool, ingestPayload)
	path := filepath.Join(os.TempDir(), name)
	if raws, err := readPool(path); err == nil && len(raws) == ingestPool && poolValid(p, raws) {
		return raws
	}
	b.Logf("grinding %d DevNet blocks into %s (once)", ingestPool, path)
	start := time.Now()
	raws := grindPool(b, p)
	b.Logf("ground in %v", time.Since(start).Round(time.Second))
	if err := writePool(path, raws); err != nil {
		b.Logf("cannot cache the pool: %v", err)
	}
	return raws
}

func poolValid(p tangle.Params, raws [][]byte) bool {
	for _, raw := range raws {
		if _, err := p.Validate(raw, ingestNow); err != nil {
			return false
		}
	}
	return true
}

func grindPool(b *testing.B, p tangle.Params) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	raws := make([][]byte, ingestPool)
	blocks := make([]*tangle.Block, ingestPool)
	const layer = 8
	for start := 0; start < ingestPool; start += layer {
		end := min(start+layer, ingestPool)
		// Headers first (sequential, deterministic), then grind the layer in parallel.
		for i := start; i < end; i++ {
			var parents []tangle.ID
			if start == 0 {
				parents = []tangle.ID{tangle.Genesis}
			} else {
				lo := max(0, start-64)
				for range 4 {
					parents = append(parents, blocks[lo+rng.IntN(start-lo)].ID())
				}
			}
			payload := make([]byte, ingestPayload)
			for j := range payload {
				payload[j] = byte(rng.Uint32())
			}
			var tag tangle.Tag
			binary.LittleEndian.PutUint64(tag[:], rng.Uint64())
			h := tangle.Header{Network: p.ID, Time: ingestT0 + int64(i), TTL: ingestTTL, Parents: parents,
				Tag: tag, PayloadType: tangle.PayloadSealed, Payload: payload}
			raw, err := h.Encode()
			if err != nil {
				b.Fatal(err)
			}
			raws[i] = raw
		}
		var wg sync.WaitGroup
		for i := start; i < end; i++ {
			wg.Go(func() { grind(p, raws[i]) })
		}
		wg.Wait()
		for i := start; i < end; i++ {
			bl, err := p.Validate(raws[i], ingestNow)
			if err != nil {
				b.Fatalf("ground block %d: %v", i, err)
			}
			blocks[i] = bl
		}
	}
	return raws
}

// grind is the plain hashcash loop of protocol.md §3.
func grind(p tangle.Params, raw []byte) {
	target := tangle.Target(p.Work(len(raw), binary.LittleEndian.Uint32(raw[17:])))
	d := tangle.PoWDigest(raw)
	for nonce := uint64(0); ; nonce++ {
		if tangle.PoWScore(&d, nonce) <= target {
			tangle.SetNonce(raw, nonce)
			return
		}
	}
}

func readPool(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var raws [][]byte
	for {
		var n uint32
		if err := binary.Read(r, binary.LittleEndian, &n); err == io.EOF {
			return raws, nil
		} else if err != nil {
			return nil, err
		}
		if n > tangle.MaxBlockSize {
			return nil, fmt.Errorf("bad length %d", n)
		}
		raw := make([]byte, n)
		if _, err := io.ReadFull(r, raw); err != nil {
			return nil, err
		}
		raws = append(raws, raw)
	}
}

func writePool(path string, raws [][]byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, raw := range raws {
		binary.Write(w, binary.LittleEndian, uint32(len(raw)))
		w.Write(raw)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fill stores n BenchNet blocks with a long TTL, so that the timed part works on indexes of a realistic
// depth. (The store does not check a block's network; Validate is the caller's job.)
func fill(b *testing.B, s *Store, n int) {
	const chunk = 500
	for i := 0; i < n; i += chunk {
		batch := make([]*tangle.Block, 0, chunk)
		for range min(chunk, n-i) {
			batch = append(batch, mk(b, bench, spec{time: ingestT0 - 60_000, ttl: tangle.MaxTTL}))
		}
		if _, err := s.Put(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
}

// runIngest times Validate + Put of b.N pool blocks by producers goroutines, each putting perPut blocks
// per call. The pool is replayed in rounds; between rounds (timer stopped) Prune empties the store of
// the pool's blocks, leaving the filler.
func runIngest(b *testing.B, producers, perPut int, opts ...Option) {
	raws := ingestBlocks(b)
	p := tangle.DevNet
	path := filepath.Join(b.TempDir(), "blocks.db")
	s, err := Open(path, p, append([]Option{WithClock(func() time.Time { return ingestNow })}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fill(b, s, ingestFiller)
	b.SetBytes(int64(len(raws[0])))
	b.ReportAllocs()
	b.ResetTimer()
	batches0, batched0 := s.batches.Load(), s.batched.Load()
	var (
		done    int
		last    int // blocks of the last round
		invalid atomic.Int64
		failed  atomic.Pointer[error]
	)
	for done < b.N {
		round := min(len(raws), b.N-done)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range producers {
			wg.Go(func() {
				batch := make([]*tangle.Block, 0, perPut)
				for {
					start := int(next.Add(int64(perPut))) - perPut
					if start >= round {
						return
					}
					batch = batch[:0]
					for _, raw := range raws[start:min(start+perPut, round)] {
						bl, err := p.Validate(raw, ingestNow)
						if err != nil {
							invalid.Add(1)
							continue
						}
						batch = append(batch, bl)
					}
					if _, err := s.Put(context.Background(), batch...); err != nil {
						failed.Store(&err)
						return
					}
				}
			})
		}
		wg.Wait()
		done += round
		last = round
		if done < b.N {
			b.StopTimer()
			if n, err := s.Prune(ingestNow.Add(2 * time.Hour)); err != nil || n != round {
				b.Fatalf("Prune between rounds: %d, %v; want %d", n, err, round)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	if e := failed.Load(); e != nil {
		b.Fatal(*e)
	}
	if n := invalid.Load(); n != 0 {
		b.Fatalf("%d blocks failed validation", n)
	}
	st, err := s.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if s.opts.budget > 0 {
		if st.Bytes > s.opts.budget {
			b.Fatalf("Stats.Bytes = %d after the run, budget %d", st.Bytes, s.opts.budget)
		}
		b.ReportMetric(float64(st.Evicted)/float64(b.N), "evicted/op")
	} else if want := ingestFiller + last; st.Blocks != want {
		b.Fatalf("Stats.Blocks = %d after the run, want %d", st.Blocks, want)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
	b.ReportMetric(float64(s.batched.Load()-batched0)/float64(s.batches.Load()-batches0), "blocks/batch")
}

// BenchmarkIngest is the end-to-end ingest path of a relay: params.Validate (with real DevNet proof
// of work) and a durable, group-committed Store.Put, from 64 concurrent producers that each put one
// block per call, as gossip handlers do.
func BenchmarkIngest(b *testing.B) {
	runIngest(b, 64, 1)
}

// BenchmarkIngestOverBudget is BenchmarkIngest into a store whose budget its filler already uses up:
// every block stored evicts about one (older) filler block in the same transaction. Run it with
// -benchtime 20000x or less, so that only filler is evicted.
func BenchmarkIngestOverBudget(b *testing.B) {
	one := int64(len(mk(b, bench, spec{time: ingestT0 - 60_000, ttl: tangle.MaxTTL}).Raw))
	runIngest(b, 64, 1, WithBudget(one*ingestFiller))
}

// BenchmarkIngestCatchUp is the same with 4 producers putting 64 blocks per call, as catch-up does.
func BenchmarkIngestCatchUp(b *testing.B) {
	runIngest(b, 4, 64)
}

// BenchmarkIngestSerial is a single producer putting one block per call: each Put is its own commit
// (fsync), so this is the store's latency, not its throughput.
func BenchmarkIngestSerial(b *testing.B) {
	runIngest(b, 1, 1)
}

// BenchmarkSelectParents draws 4 parents from a pool of 1,000 eligible tips.
func BenchmarkSelectParents(b *testing.B) {
	s, _ := open(b, bench, WithClock(func() time.Time { return time.UnixMilli(t0 + 1000) }))
	var bs []*tangle.Block
	for range 1000 {
		bs = append(bs, mk(b, bench, spec{}))
	}
	put(b, s, bs...)
	if got := s.SelectParents(0, 4); len(got) != 4 {
		b.Fatalf("got %d parents", len(got))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.SelectParents(0, 4)
		}
	})
}
