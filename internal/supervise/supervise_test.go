package supervise

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A loop that panics twice is restarted each time, the panics are counted and logged at ERROR, and
// the third call's result is Run's.
func TestRunRecoversAndRestarts(t *testing.T) {
	var logs bytes.Buffer // Run calls the loop and logs on this goroutine
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var panics atomic.Uint64
	var calls int
	done := errors.New("done")
	err := Run(context.Background(), log, "test", &panics, func(context.Context) error {
		calls++
		if calls <= 2 {
			var m map[string]int
			m["x"]++ // a real runtime panic: assignment to a nil map
		}
		return done
	})
	if !errors.Is(err, done) || calls != 3 || panics.Load() != 2 {
		t.Fatalf("Run = %v after %d calls, %d panics; want done, 3, 2", err, calls, panics.Load())
	}
	out := logs.String()
	if strings.Count(out, "level=ERROR") != 2 || !strings.Contains(out, "loop=test") || !strings.Contains(out, "nil map") {
		t.Fatalf("log:\n%s", out)
	}
}

// A loop that always panics is stopped by its context.
func TestRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var panics atomic.Uint64
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, nil, "test", &panics, func(context.Context) error { panic("always") })
	}()
	deadline := time.Now().Add(30 * time.Second)
	for panics.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the loop was not restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
