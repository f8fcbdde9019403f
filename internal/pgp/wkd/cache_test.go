package wkd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/pgp"
)

// countingLookup answers from a table and counts the questions per address.
type countingLookup struct {
	keys  map[string]*pgp.PublicKey
	fail  map[string]bool
	asked map[string]int
}

func (l *countingLookup) Lookup(ctx context.Context, addr string) (*pgp.PublicKey, error) {
	l.asked[addr]++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if l.fail[addr] {
		return nil, fmt.Errorf("%w: no answer", ErrLookup)
	}
	if k, ok := l.keys[addr]; ok {
		return k, nil
	}
	return nil, ErrNotFound
}

// TestCache: a key, a "no key" and a failure are each remembered for their own time (asked once
// within it, again after it), addresses compare case-insensitively, a lookup ended by the caller's
// context is not remembered, and the cache keeps at most Max addresses.
func TestCache(t *testing.T) {
	k, err := pgp.Generate("joe@example.com", time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	src := &countingLookup{keys: map[string]*pgp.PublicKey{"joe@example.com": k.Public()},
		fail: map[string]bool{"down@example.net": true}, asked: map[string]int{}}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	c := &Cache{Source: src, Now: func() time.Time { return now }, Max: 3}
	ctx := context.Background()
	look := func(addr string) (*pgp.PublicKey, error) { return c.Lookup(ctx, addr) }

	for range 3 {
		if got, err := look("joe@example.com"); err != nil || got == nil {
			t.Fatalf("joe: %v, %v", got, err)
		}
		if _, err := look("nobody@example.org"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("nobody: %v, want ErrNotFound", err)
		}
		if _, err := look("down@example.net"); !errors.Is(err, ErrLookup) {
			t.Fatalf("down: %v, want ErrLookup", err)
		}
	}
	if _, err := look("JOE@Example.COM"); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"joe@example.com": 1, "nobody@example.org": 1, "down@example.net": 1}
	check := func(when string) {
		t.Helper()
		for a, n := range want {
			if src.asked[a] != n {
				t.Errorf("%s: %s asked %d times, want %d", when, a, src.asked[a], n)
			}
		}
	}
	check("at first")

	now = now.Add(6 * time.Minute) // past FailTTL (5 min): only the failure is asked again
	look("joe@example.com")
	look("nobody@example.org")
	look("down@example.net")
	want["down@example.net"]++
	check("after 6 min")

	now = now.Add(time.Hour) // past MissTTL (1 h)
	look("joe@example.com")
	look("nobody@example.org")
	want["nobody@example.org"]++
	check("after 1 h 6 min")

	now = now.Add(24 * time.Hour) // past KeyTTL (24 h)
	look("joe@example.com")
	want["joe@example.com"]++
	check("after 25 h")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for range 2 {
		c.Lookup(canceled, "new@example.com")
	}
	if src.asked["new@example.com"] != 2 {
		t.Errorf("a canceled lookup was remembered: asked %d times, want 2", src.asked["new@example.com"])
	}

	for i := range 10 {
		look(fmt.Sprintf("u%d@example.com", i))
	}
	c.mu.Lock()
	n := len(c.m)
	c.mu.Unlock()
	if n > 3 {
		t.Errorf("%d addresses remembered, want at most Max = 3", n)
	}
}
