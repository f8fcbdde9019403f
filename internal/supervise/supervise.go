// Package supervise keeps the node's background loops running: the outbox's queue and receipt loops,
// the inbox's workers and pruning, the chat service's event loop. A panic in a loop is a bug, but it
// must not take the node down with it, nor silently stop sending or receiving mail.
//
// Run calls the loop; when it panics, Run recovers, logs the panic and its stack at ERROR (the stack
// names code, not message content), counts it, waits RestartDelay and calls the loop again. What the
// loop was doing when it panicked is lost only as far as memory goes: the engines keep their state in
// the store (a recipient stays due, a block unfiled is published again for want of a receipt), so a
// restarted loop picks up where the store says. The counts are exported as tanglemail_panics_total
// with the loop's name as the "loop" label (package metrics).
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// RestartDelay is how long Run waits after a panic before it calls the loop again, so that a loop that
// panics at once does not spin.
const RestartDelay = 100 * time.Millisecond

// Run calls loop(ctx) until it returns without panicking or ctx is done, and returns loop's error
// (ctx's error if ctx ended while waiting to restart). Each recovered panic is logged at ERROR on log
// with the loop's name and counted in panics (which may be nil).
func Run(ctx context.Context, log *slog.Logger, name string, panics *atomic.Uint64, loop func(context.Context) error) error {
	for {
		err, panicked := call(ctx, log, name, loop)
		if !panicked {
			return err
		}
		if panics != nil {
			panics.Add(1)
		}
		t := time.NewTimer(RestartDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func call(ctx context.Context, log *slog.Logger, name string, loop func(context.Context) error) (err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			if log != nil {
				log.Error("recovered a panic in a background loop; restarting it", "loop", name,
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
		}
	}()
	return loop(ctx), false
}
