package tangle

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/blake2b"
)

// This file is the sender's side of protocol.md §3: grinding a nonce n such that
// LE64(H(d ‖ LE64(n))[0:8]) ≤ target, with d = H(block without its nonce).
//
// Concurrency: the nonce space is handed out in chunks of grindChunk consecutive nonces from one atomic
// counter, so workers take disjoint ranges in increasing order. A worker that finds a valid nonce
// lowers a shared "best" value and stops its chunk; workers keep finishing chunks that start below the
// best value and stop at the first chunk that starts above it. The result is therefore the smallest valid
// nonce ≥ 0, whatever the number of workers or their scheduling (the extra work is at most one chunk per
// worker). Workers do not look at the context: the calling goroutine waits on ctx.Done() and raises a
// stop flag that workers read once per chunk (every few thousand hashes, ~1 ms).

// grindChunk is the number of consecutive nonces a worker claims at a time. It bounds the cancellation
// latency and the extra work after a hit; the atomic add per chunk is negligible at this size.
const grindChunk = 4096

// progressInterval is the minimum time between two progress callbacks (at most 10 per second).
const progressInterval = 100 * time.Millisecond

// noNonce marks "nothing found yet". Nonce 2^64−1 is never reached (it would take 2^64 hashes).
const noNonce = ^uint64(0)

// errNonceLimit is returned by the internal grinder when it ran out of its nonce budget (benchmarks).
var errNonceLimit = errors.New("tangle: nonce budget exhausted")

// GrindOption configures Params.Grind and Params.Build.
type GrindOption func(*grindConfig)

type grindConfig struct {
	workers  int
	progress func(done, expected uint64)
	busy     func() bool
}

// yieldBatch is the number of hashes between two calls of the WithYield hook (about 0.15 ms of one core).
const yieldBatch = 512

// pausePoll is how often a paused worker (see WithYield) looks again at the hook and the stop flag.
const pausePoll = time.Millisecond

// WithYield makes the grind give way to more urgent work in the same process while busy reports true:
// every worker calls busy every yieldBatch hashes and, if it is true, runtime.Gosched, so a goroutine
// that became runnable (a client's command) waits for a fraction of a millisecond instead of the
// scheduler's preemption slice (10 ms); and when the grind runs as many workers as GOMAXPROCS (the
// default), its last worker pauses before claiming its next chunk until busy is false, leaving one
// processor to the rest of the process. busy must be cheap (an atomic load); it is called from every
// worker. On an idle process (busy false) the cost is one call per yieldBatch hashes. The result is the
// same: a paused worker holds no chunk, so the smallest valid nonce is still found.
func WithYield(busy func() bool) GrindOption {
	return func(c *grindConfig) { c.busy = busy }
}

// WithWorkers sets the number of grinding goroutines. n ≤ 0 means runtime.GOMAXPROCS(0), the default.
func WithWorkers(n int) GrindOption {
	return func(c *grindConfig) { c.workers = n }
}

// WithProgress registers fn to be called with the number of hashes done so far and the expected number
// W (protocol.md §3), at most about ten times per second, from the goroutine that called Grind. fn is
// not called when the work is done within the first interval, nor after Grind returns.
func WithProgress(fn func(done, expected uint64)) GrindOption {
	return func(c *grindConfig) { c.progress = fn }
}

func newGrindConfig(opts []GrindOption) grindConfig {
	var c grindConfig
	for _, o := range opts {
		o(&c)
	}
	if c.workers <= 0 {
		c.workers = runtime.GOMAXPROCS(0)
	}
	return c
}

// Grind finds the smallest valid nonce for the encoded block raw (protocol.md §3), writes it into the last
// NonceSize bytes of raw and returns it. Everything but the nonce must already be final: the work W
// depends on len(raw) and on the TTL field. With W = 0 (PoW disabled) the nonce is 0.
//
// Grind runs WithWorkers goroutines (default GOMAXPROCS) and returns promptly, within a few thousand
// hashes per worker, when ctx is cancelled; it then returns an error wrapping ctx.Err() and leaves raw
// unchanged. raw must not be modified while Grind runs. Grind checks only the size bounds of raw, not its
// structure; Build checks the header before grinding.
func (p *Params) Grind(ctx context.Context, raw []byte, opts ...GrindOption) (uint64, error) {
	if len(raw) < MinBlockSize || len(raw) > MaxBlockSize {
		return 0, invalid(ErrSize, "%d bytes, want %d..%d", len(raw), MinBlockSize, MaxBlockSize)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("tangle: grind: %w", err)
	}
	w := p.Work(len(raw), binary.LittleEndian.Uint32(raw[offTTL:]))
	if w == 0 {
		SetNonce(raw, 0)
		return 0, nil
	}
	d := PoWDigest(raw)
	cfg := newGrindConfig(opts)
	nonce, _, err := grind(ctx, newGrinder(&d, Target(w), noNonce), w, cfg)
	if err != nil {
		return 0, err
	}
	SetNonce(raw, nonce)
	return nonce, nil
}

// Build encodes h, grinds its proof of work and returns the decoded block (protocol.md §2, §3). A zero
// h.Network is taken as p.ID; another network's id is refused (ErrNetwork), as are what Encode refuses
// and, before any work is spent, a TTL out of bounds and a payload that fails protocol.md §2.1 rule 6.
// Time rules are not checked: the caller picks the issuing time.
func (p *Params) Build(ctx context.Context, h Header, opts ...GrindOption) (*Block, error) {
	if h.Network == (NetworkID{}) {
		h.Network = p.ID
	}
	if h.Network != p.ID {
		return nil, invalid(ErrNetwork, "header for network %s, params for %s (%s)", h.Network, p.ID, p.Name)
	}
	if err := checkTTL(h.TTL); err != nil {
		return nil, err
	}
	if err := checkPayload(h.PayloadType, h.Payload); err != nil {
		return nil, err
	}
	raw, err := h.Encode()
	if err != nil {
		return nil, err
	}
	if _, err := p.Grind(ctx, raw, opts...); err != nil {
		return nil, err
	}
	return Decode(raw)
}

// grinder is the state shared by the workers of one grind.
type grinder struct {
	digest [32]byte
	target uint64
	limit  uint64 // nonces are taken from [0, limit)

	next atomic.Uint64 // start of the next unclaimed chunk
	best atomic.Uint64 // smallest valid nonce found so far, or noNonce
	done atomic.Uint64 // hashes computed, updated once per chunk
	stop atomic.Bool   // set on cancellation

	pauses atomic.Uint64 // times a worker paused for WithYield (tests)
}

// newGrinder returns the state of a grind of digest d over [0, limit) for target.
func newGrinder(d *[32]byte, target, limit uint64) *grinder {
	g := &grinder{digest: *d, target: target, limit: limit}
	g.best.Store(noNonce)
	return g
}

// grind searches [0, g.limit) for the smallest nonce whose score is ≤ g.target. It returns the nonce and
// the number of hashes computed, errNonceLimit if there is none below the limit, or ctx's error.
func grind(ctx context.Context, g *grinder, expected uint64, cfg grindConfig) (uint64, uint64, error) {

	var wg sync.WaitGroup
	finished := make(chan struct{})
	// pauser is the index of the worker that pauses while cfg.busy reports true, or -1.
	pauser := -1
	if cfg.busy != nil && cfg.workers >= 2 && cfg.workers >= runtime.GOMAXPROCS(0) {
		pauser = cfg.workers - 1
	}
	for i := range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.work(cfg.busy, i == pauser)
		}()
	}
	go func() {
		wg.Wait()
		close(finished)
	}()

	var tick <-chan time.Time
	if cfg.progress != nil {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-finished:
			n := g.best.Load()
			if n == noNonce {
				return 0, g.done.Load(), errNonceLimit
			}
			return n, g.done.Load(), nil
		case <-ctx.Done():
			g.stop.Store(true)
			<-finished
			return 0, g.done.Load(), fmt.Errorf("tangle: grind: %w", ctx.Err())
		case <-tick:
			cfg.progress(g.done.Load(), expected)
		}
	}
}

// work is one grinding goroutine. The inner loop is one BLAKE2b-256 of a 40-byte stack buffer, a store of
// the nonce and a compare: no allocation, no interface call, no shared-memory access. busy (WithYield)
// is called between batches of yieldBatch hashes; pause says this worker stops claiming chunks while
// busy reports true.
func (g *grinder) work(busy func() bool, pause bool) {
	var buf [40]byte
	copy(buf[:32], g.digest[:])
	target := g.target
	for !g.stop.Load() {
		if pause {
			g.pauseWhile(busy)
		}
		start := g.next.Add(grindChunk) - grindChunk
		if start >= g.limit || start >= g.best.Load() || start+grindChunk < start {
			return // chunks are claimed in increasing order: nothing smaller is left
		}
		end := min(start+grindChunk, g.limit)
		n := start
	chunk:
		for n < end {
			batchEnd := min(n+yieldBatch, end)
			for ; n < batchEnd; n++ {
				binary.LittleEndian.PutUint64(buf[32:], n)
				sum := blake2b.Sum256(buf[:])
				if binary.LittleEndian.Uint64(sum[:8]) <= target {
					g.offer(n)
					n++
					break chunk
				}
			}
			if busy != nil && busy() {
				runtime.Gosched()
			}
		}
		g.done.Add(n - start)
	}
}

// pauseWhile waits, holding no chunk, until busy reports false, the grind is stopped, another worker
// has found a nonce or the nonces are all claimed (in the last three cases the caller's next claim ends
// it).
func (g *grinder) pauseWhile(busy func() bool) {
	if !busy() {
		return
	}
	g.pauses.Add(1)
	for busy() && !g.stop.Load() && g.best.Load() == noNonce && g.next.Load() < g.limit {
		time.Sleep(pausePoll)
	}
}

// offer lowers best to n if n is smaller.
func (g *grinder) offer(n uint64) {
	for {
		cur := g.best.Load()
		if n >= cur || g.best.CompareAndSwap(cur, n) {
			return
		}
	}
}
