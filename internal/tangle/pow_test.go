package tangle

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// waitFor is the deadline for events in these tests; generous for -race on a loaded machine.
const waitFor = 10 * time.Second

func TestGrindFindsSmallestValidNonce(t *testing.T) {
	tests := []struct {
		name    string
		p       *Params
		parents int
		payload int
	}{
		{"low work, genesis child", &lowWork, 1, 48},
		{"low work, 8 parents", &lowWork, 8, 1000},
		{"low work, max size", &lowWork, 1, MaxBlockSize - Overhead - IDSize},
		{"devnet chat", &DevNet, 4, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := encodeT(t, testHeader(tc.p, tc.parents, tc.payload))
			want := smallestValidNonce(tc.p, raw)
			for _, workers := range []int{1, 2, 3, 8} {
				r := slices.Clone(raw)
				SetNonce(r, 12345) // Grind overwrites whatever nonce is there
				n, err := tc.p.Grind(context.Background(), r, WithWorkers(workers))
				if err != nil {
					t.Fatalf("workers=%d: %v", workers, err)
				}
				if n != want {
					t.Fatalf("workers=%d: nonce %d, want the smallest valid nonce %d", workers, n, want)
				}
				SetNonce(raw, want)
				if !bytes.Equal(r, raw) {
					t.Fatalf("workers=%d: raw changed beyond the nonce", workers)
				}
				if _, err := tc.p.Validate(r, now0); err != nil {
					t.Fatalf("workers=%d: ground block invalid: %v", workers, err)
				}
			}
		})
	}
}

// TestGrindExpectedWork: over many blocks the mean number of hashes (smallest valid nonce + 1) is W,
// as protocol.md §3 says. The inputs are fixed, so the outcome is deterministic; for random inputs the
// ±15% band would be 4.2 standard deviations of the mean of 800 geometric samples.
func TestGrindExpectedWork(t *testing.T) {
	const blocks = 800
	raw := encodeT(t, testHeader(&lowWork, 2, 64))
	w := lowWork.Work(len(raw), lowWork.DefaultChatTTL)
	var total uint64
	for i := range blocks {
		putU64(raw, offTime, uint64(t0)+uint64(i))
		n, err := lowWork.Grind(context.Background(), raw, WithWorkers(1))
		if err != nil {
			t.Fatal(err)
		}
		if err := lowWork.CheckPoW(raw); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		total += n + 1
	}
	mean := float64(total) / blocks
	if mean < 0.85*float64(w) || mean > 1.15*float64(w) {
		t.Fatalf("mean work %.0f hashes, want W = %d ± 15%%", mean, w)
	}
	t.Logf("W = %d, mean hashes = %.0f", w, mean)
}

func TestGrindPoWDisabled(t *testing.T) {
	raw := encodeT(t, testHeader(&BenchNet, 2, 64))
	SetNonce(raw, 99)
	n, err := BenchNet.Grind(context.Background(), raw)
	if err != nil || n != 0 {
		t.Fatalf("Grind with B = 0: %d, %v; want nonce 0", n, err)
	}
	if !bytes.Equal(raw[len(raw)-NonceSize:], make([]byte, NonceSize)) {
		t.Fatal("nonce 0 not written")
	}
}

func TestGrindRejectsBadSize(t *testing.T) {
	for _, size := range []int{0, MinBlockSize - 1, MaxBlockSize + 1} {
		_, err := DevNet.Grind(context.Background(), make([]byte, size))
		wantErr(t, err, ErrSize)
	}
}

// TestGrindCancel: a grind that would never finish returns promptly with the context's error, leaves
// raw untouched and stops all its workers.
func TestGrindCancel(t *testing.T) {
	raw := encodeT(t, testHeader(&unreachable, 2, 64))
	SetNonce(raw, 7)
	orig := slices.Clone(raw)
	if w := unreachable.Work(len(raw), unreachable.DefaultChatTTL); Target(w) != 1 {
		t.Fatalf("test network is not unreachable: W %d", w)
	}
	baseline := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var calls []uint64
	expectedW := unreachable.Work(len(raw), unreachable.DefaultChatTTL)
	type result struct {
		n   uint64
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := unreachable.Grind(ctx, raw, WithWorkers(2), WithProgress(func(done, expected uint64) {
			if expected != expectedW {
				t.Errorf("progress expected %d, want W = %d", expected, expectedW)
			}
			mu.Lock()
			calls = append(calls, done)
			mu.Unlock()
			if done > 0 {
				once.Do(func() { close(started) })
			}
		}))
		res <- result{n, err}
	}()
	select {
	case <-started:
	case <-time.After(waitFor):
		t.Fatal("no progress reported")
	}
	cancel()
	var r result
	select {
	case r = <-res:
	case <-time.After(waitFor):
		t.Fatal("Grind did not return after cancel")
	}
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", r.err)
	}
	if !bytes.Equal(raw, orig) {
		t.Fatal("a cancelled grind modified raw")
	}
	mu.Lock()
	if !slices.IsSorted(calls) {
		t.Errorf("progress went backwards: %v", calls)
	}
	mu.Unlock()

	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, %d before the grind", runtime.NumGoroutine(), baseline)
		}
		runtime.Gosched()
	}
}

func TestGrindDeadline(t *testing.T) {
	raw := encodeT(t, testHeader(&unreachable, 2, 64))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := unreachable.Grind(ctx, raw, WithWorkers(1))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Grind ignored its deadline")
	}
}

func TestGrindAlreadyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	raw := encodeT(t, testHeader(&lowWork, 2, 64))
	if _, err := lowWork.Grind(ctx, raw); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if _, err := lowWork.Build(ctx, testHeader(&lowWork, 2, 64)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Build: error %v, want context.Canceled", err)
	}
}

// TestGrindProgressRate: the callback runs at most about ten times per second.
func TestGrindProgressRate(t *testing.T) {
	raw := encodeT(t, testHeader(&unreachable, 2, 64))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls int
	start := time.Now()
	_, err := unreachable.Grind(ctx, raw, WithWorkers(1), WithProgress(func(done, _ uint64) {
		calls++ // called from Grind's goroutine: no lock needed
		if calls == 5 {
			cancel()
		}
	}))
	elapsed := time.Since(start)
	if !errors.Is(err, context.Canceled) || calls != 5 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	if limit := int(elapsed/progressInterval) + 1; calls > limit {
		t.Fatalf("%d progress calls in %v, more than %d", calls, elapsed, limit)
	}
}

// TestGrindNonceLimit: the internal grinder scans exactly [0, limit) and reports an exhausted budget.
func TestGrindNonceLimit(t *testing.T) {
	d := PoWDigest(encodeT(t, testHeader(&DevNet, 1, 48)))
	for _, tc := range []struct {
		workers int
		limit   uint64
	}{{1, 1}, {1, grindChunk + 1}, {2, 3*grindChunk - 5}, {3, 10_000}} {
		cfg := newGrindConfig([]GrindOption{WithWorkers(tc.workers)})
		_, hashes, err := grind(context.Background(), newGrinder(&d, 0, tc.limit), 0, cfg)
		if !errors.Is(err, errNonceLimit) || hashes != tc.limit {
			t.Errorf("workers=%d limit=%d: %d hashes, %v", tc.workers, tc.limit, hashes, err)
		}
	}
	// A target every score meets: nonce 0, one chunk per worker at most.
	cfg := newGrindConfig([]GrindOption{WithWorkers(2)})
	n, hashes, err := grind(context.Background(), newGrinder(&d, ^uint64(0), noNonce), 1, cfg)
	if err != nil || n != 0 || hashes == 0 || hashes > 2*grindChunk {
		t.Fatalf("trivial target: nonce %d, %d hashes, %v", n, hashes, err)
	}
}

func TestWithWorkersDefault(t *testing.T) {
	if got := newGrindConfig(nil).workers; got != runtime.GOMAXPROCS(0) {
		t.Fatalf("default workers %d, want GOMAXPROCS %d", got, runtime.GOMAXPROCS(0))
	}
	if got := newGrindConfig([]GrindOption{WithWorkers(-3)}).workers; got != runtime.GOMAXPROCS(0) {
		t.Fatalf("WithWorkers(-3) gives %d workers", got)
	}
	if got := newGrindConfig([]GrindOption{WithWorkers(5)}).workers; got != 5 {
		t.Fatalf("WithWorkers(5) gives %d workers", got)
	}
}

func TestBuild(t *testing.T) {
	valid := testHeader(&lowWork, 3, 200)
	blk, err := lowWork.Build(context.Background(), valid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lowWork.Validate(blk.Raw, now0); err != nil {
		t.Fatalf("built block invalid: %v", err)
	}
	if blk.Nonce != smallestValidNonce(&lowWork, blk.Raw) || !bytes.Equal(blk.Payload, valid.Payload) {
		t.Fatal("Build did not grind the smallest nonce of the given header")
	}

	zeroNet := valid
	zeroNet.Network = NetworkID{}
	if blk, err := lowWork.Build(context.Background(), zeroNet); err != nil || blk.Network != lowWork.ID {
		t.Fatalf("zero network: %v", err)
	}

	// Rejections happen before any work: on the unreachable network a grind would never end.
	bad := func(mod func(*Header)) Header { h := testHeader(&unreachable, 2, 64); mod(&h); return h }
	tests := []struct {
		name string
		h    Header
		want error
	}{
		{"other network", bad(func(h *Header) { h.Network = MainNet.ID }), ErrNetwork},
		{"TTL 59", bad(func(h *Header) { h.TTL = 59 }), ErrTTL},
		{"TTL too long", bad(func(h *Header) { h.TTL = MaxTTL + 1 }), ErrTTL},
		{"unknown payload type", bad(func(h *Header) { h.PayloadType = 2 }), ErrPayloadType},
		{"short sealed payload", bad(func(h *Header) { h.Payload = h.Payload[:47] }), ErrPayload},
		{"no parents", bad(func(h *Header) { h.Parents = nil }), ErrParents},
		{"nine parents", bad(func(h *Header) { h.Parents = testHeader(&unreachable, 9, 0).Parents }), ErrParents},
		{"too large", bad(func(h *Header) { h.Payload = make([]byte, MaxBlockSize) }), ErrSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			blk, err := unreachable.Build(ctx, tc.h)
			wantErr(t, err, tc.want)
			if blk != nil {
				t.Fatal("block returned with error")
			}
		})
	}
}
