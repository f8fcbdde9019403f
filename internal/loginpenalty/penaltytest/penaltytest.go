// Package penaltytest is test support for the front doors' failed-login penalties: a Clock that a
// loginpenalty.Penalty sleeps on without waiting, and that records each wait.
package penaltytest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/loginpenalty"
)

// Clock is an injected clock: a sleep advances it at once and is recorded.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

// NewClock returns a clock at a fixed time.
func NewClock() *Clock { return &Clock{now: time.Unix(1_700_000_000, 0)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep records d and advances the clock by it; it returns ctx's error, if any.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Sleeps returns the waits so far, in order.
func (c *Clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sleeps)
}

// Penalty returns a penalty with default delays on this clock.
func (c *Clock) Penalty() *loginpenalty.Penalty {
	return loginpenalty.New(loginpenalty.Options{Now: c.Now, Sleep: c.Sleep})
}

// Instant returns a penalty that counts failures but never waits: for the tests that are not about it.
func Instant() *loginpenalty.Penalty { return NewClock().Penalty() }

// Growing is the waits of the attempts that follow 1, 2, 3 and 4 failures with the default delays.
var Growing = []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second}
