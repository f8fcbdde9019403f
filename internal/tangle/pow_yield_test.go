package tangle

import (
	"bufio"
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

// withProcs runs the test with GOMAXPROCS n, so that a default grind (GOMAXPROCS workers) has a worker
// that pauses for WithYield whatever the machine.
func withProcs(t *testing.T, n int) {
	old := runtime.GOMAXPROCS(n)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
}

// TestGrindYieldSameNonce: yielding changes when the work is done, never its result: the smallest valid
// nonce, with the hook always busy, never busy or flapping.
func TestGrindYieldSameNonce(t *testing.T) {
	withProcs(t, 2)
	raw := encodeT(t, testHeader(&lowWork, 2, 200))
	want := smallestValidNonce(&lowWork, raw)
	var calls atomic.Uint64
	hooks := map[string]func() bool{
		"always": func() bool { return true },
		"never":  func() bool { return false },
		"flap":   func() bool { return calls.Add(1)%3 == 0 },
	}
	for name, busy := range hooks {
		for _, workers := range []int{1, 2, 3} {
			r := slices.Clone(raw)
			n, err := lowWork.Grind(context.Background(), r, WithWorkers(workers), WithYield(busy))
			if err != nil || n != want {
				t.Fatalf("%s, workers=%d: nonce %d, err %v; want %d", name, workers, n, err, want)
			}
		}
	}
}

// TestGrindYieldPausesOneWorker: while the hook reports busy, a grind with GOMAXPROCS workers pauses
// one of them and still covers every nonce of its range; with fewer workers than processors none
// pauses; with the hook idle none pauses.
func TestGrindYieldPausesOneWorker(t *testing.T) {
	withProcs(t, 2)
	d := blake2b.Sum256([]byte("yield"))
	const limit = 64 * grindChunk
	var busy atomic.Bool
	for _, tc := range []struct {
		workers int
		busy    bool
		paused  bool
	}{{2, true, true}, {1, true, false}, {2, false, false}} {
		busy.Store(tc.busy)
		g := newGrinder(&d, 0, limit)
		cfg := newGrindConfig([]GrindOption{WithWorkers(tc.workers), WithYield(busy.Load)})
		_, hashes, err := grind(context.Background(), g, 0, cfg)
		if !errors.Is(err, errNonceLimit) || hashes != limit {
			t.Fatalf("%+v: %d hashes, err %v; want %d, errNonceLimit", tc, hashes, err, limit)
		}
		if got := g.pauses.Load() > 0; got != tc.paused {
			t.Errorf("%+v: paused %v (%d times)", tc, got, g.pauses.Load())
		}
	}
}

// TestGrindYieldLetsClientRun: a grind that never ends, with GOMAXPROCS workers and a busy hook, leaves
// a loopback client/server pair (the shape of a front-door session: network wake-ups) able to finish
// its round trips; then the grind is cancelled and stops.
func TestGrindYieldLetsClientRun(t *testing.T) {
	withProcs(t, 2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := c.Write([]byte(line)); err != nil {
				return
			}
		}
	}()

	raw := encodeT(t, testHeader(&unreachable, 2, 64))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var busy atomic.Bool
	busy.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := unreachable.Grind(ctx, raw, WithYield(busy.Load))
		done <- err
	}()

	client := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			client <- err
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for range 200 {
			if _, err := c.Write([]byte("NOOP\r\n")); err != nil {
				client <- err
				return
			}
			if _, err := r.ReadString('\n'); err != nil {
				client <- err
				return
			}
		}
		client <- nil
	}()
	select {
	case err := <-client:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-done:
		t.Fatalf("the grind ended before the client: %v", err)
	case <-time.After(4 * waitFor):
		t.Fatal("the client did not finish its round trips while the grind ran")
	}
	busy.Store(false)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("grind: %v, want context.Canceled", err)
		}
	case <-time.After(4 * waitFor):
		t.Fatal("the grind did not stop after cancel")
	}
}
