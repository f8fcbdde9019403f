package wkd

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/pgp"
)

// Lookuper is what a Cache asks: a Client, or another lookup.
type Lookuper interface {
	Lookup(ctx context.Context, addr string) (*pgp.PublicKey, error)
}

// Cache remembers a lookup's answers, so that mail to the same address does not ask its domain's
// directory again (a round trip, up to the Client's timeout, and one more time the recipient's
// domain learns that someone writes to the address): a key for KeyTTL, "no key" (ErrNotFound) for
// MissTTL, a failed lookup (anything else) for FailTTL. It keeps at most Max addresses; when full,
// it drops the expired ones, then the one that expires first. Addresses are compared in lower case
// (§3.1 hashes the lower-cased local part; domains are case-insensitive). A lookup ended by ctx is not
// remembered. Safe for concurrent use; lookups of different addresses run concurrently (the lock is
// not held while asking).
type Cache struct {
	Source  Lookuper         // asked on a miss
	KeyTTL  time.Duration    // 0 means 24 h
	MissTTL time.Duration    // 0 means 1 h
	FailTTL time.Duration    // 0 means 5 min
	Max     int              // 0 means 10,000
	Now     func() time.Time // nil means time.Now

	mu sync.Mutex
	m  map[string]cached
}

type cached struct {
	key     *pgp.PublicKey
	err     error
	expires time.Time
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Lookup returns the remembered answer for addr, or asks c.Source and remembers its answer.
func (c *Cache) Lookup(ctx context.Context, addr string) (*pgp.PublicKey, error) {
	k := strings.ToLower(addr)
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.key, e.err
	}
	key, err := c.Source.Lookup(ctx, addr)
	if err != nil && ctx.Err() != nil {
		return key, err // our caller gave up: that says nothing about the directory
	}
	ttl := orDefault(c.KeyTTL, 24*time.Hour)
	switch {
	case errors.Is(err, ErrNotFound):
		ttl = orDefault(c.MissTTL, time.Hour)
	case err != nil:
		ttl = orDefault(c.FailTTL, 5*time.Minute)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cached{}
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max() {
		c.evict(now)
	}
	c.m[k] = cached{key: key, err: err, expires: now.Add(ttl)}
	return key, err
}

// evict makes room for one entry; c.mu is held.
func (c *Cache) evict(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	if len(c.m) < c.max() {
		return
	}
	var first string
	var at time.Time
	for k, e := range c.m {
		if first == "" || e.expires.Before(at) {
			first, at = k, e.expires
		}
	}
	delete(c.m, first)
}

func (c *Cache) max() int {
	if c.Max <= 0 {
		return 10000
	}
	return c.Max
}
