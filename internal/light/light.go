package light

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Cursor is a provider's exclusive fetch cursor (protocol.md §12): 0 is the start; everything at or
// below a cursor has been handed over.
type Cursor uint64

// Pushed is one stored block and the cursor it was stored at.
type Pushed struct {
	Cursor Cursor
	Block  []byte
}

// Usage is what a provider reports about a subscription (wire.Status).
type Usage struct {
	State      string // "pending", "active", "expired"
	UsedBytes  uint64
	QuotaBytes uint64
	Blocks     uint64
	Expires    time.Time
}

// Percent is the share of the quota in use, 0..100 (0 without a quota).
func (u Usage) Percent() int {
	if u.QuotaBytes == 0 {
		return 0
	}
	p := u.UsedBytes * 100 / u.QuotaBytes
	return int(min(p, 100))
}

// Provider is one authenticated session with a storage provider: exactly the methods of wire.Session
// (protocol.md §12) that the light client uses. It must be safe for concurrent use.
type Provider interface {
	// Fetch returns stored blocks after the cursor, at most maxCount and about maxBytes, the cursor
	// to fetch after next, and whether more are stored.
	Fetch(ctx context.Context, after Cursor, maxCount, maxBytes int) (blocks []Pushed, next Cursor, more bool, err error)
	// Release lets the provider delete everything at or below upTo.
	Release(ctx context.Context, upTo Cursor) error
	// Watch pushes blocks as the provider stores them, until the stream ends (the channel is closed).
	Watch(ctx context.Context) (<-chan Pushed, error)
	// Publish hands a finished block to the provider to validate and gossip; a refusal is a
	// *RefusedError.
	Publish(ctx context.Context, raw []byte) error
	// Tips returns parents for a block of the shard.
	Tips(ctx context.Context, shard uint32, n int) ([]tangle.ID, error)
	// Status reports the subscription's usage.
	Status(ctx context.Context) (Usage, error)
	Close() error
}

// Dialer connects and authenticates a new session with the provider (a fresh libp2p peer id each time
// is the dialer's business).
type Dialer func(ctx context.Context) (Provider, error)

// Filer trial-opens and files a batch of blocks exactly once, durably, without an expiry check
// (inbox.ProcessBatch). A nil error means every block is done with; an error means the batch must be
// handed again.
type Filer interface {
	FileBatch(ctx context.Context, bs []*tangle.Block) error
}

// RefusedError is a provider's refusal to publish a block (bad proof of work, rate limit, quota, …):
// the block was not published, and the user should see why.
type RefusedError struct {
	Provider string // the provider's name
	Code     string // the wire error code ("BadPoW", "RateLimited", …)
	Msg      string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("storage provider %s refused the block: %s: %s", e.Provider, e.Code, e.Msg)
}

// ErrNotConnected is returned by Publish and by Clients when no provider session is up.
var ErrNotConnected = errors.New("light: not connected to a storage provider (is it reachable? see `tanglemail status`)")

// Config configures NewClient. Name, DB, Dial, Filer and Params are required.
type Config struct {
	Name   string // the provider's key in light.db and in status (its peer id, say)
	DB     *DB
	Dial   Dialer
	Filer  Filer
	Params tangle.Params
	// Notify files a notice in the INBOX (quota at 80 % and full); nil: none.
	Notify func(ctx context.Context, subject, body string) error
	Log    *slog.Logger
	Clock  func() time.Time

	PageCount int // blocks per fetch page; default 512
	PageBytes int // bytes per fetch page; default 4 MiB
	// StatusInterval is how often a session reads the quota and fetches from the cursor even without
	// pushes (lost pushes are found then at the latest); default 1 min.
	StatusInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting; defaults 200 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// TipsCache is how long tips are reused; default 2 s.
	TipsCache time.Duration
}

// Status is a Client's state for the node's status.
type Status struct {
	Provider  string
	Connected bool
	Cursor    Cursor
	Usage     Usage
	LastSync  time.Time // end of the last fetch that reached the provider's end
	LastError string
	Stats     Stats
}

// Stats are counters since NewClient.
type Stats struct {
	Fetched    uint64 // blocks received by Fetch
	Pushed     uint64 // blocks received by Watch
	Bytes      uint64 // block bytes received
	Duplicates uint64 // pushed or fetched blocks dropped as already handed over
	Invalid    uint64 // blocks that failed validation (skipped)
	Filed      uint64 // blocks handed to the Filer and done with
	Sessions   uint64 // sessions started (first connection and reconnects)
	Published  uint64
	Refused    uint64 // publishes the provider refused
	Notices    uint64 // quota notices filed
}

type counters struct {
	fetched, pushed, bytes, dups, invalid, filed, sessions, published, refused, notices atomic.Uint64
}

// Client keeps one provider subscription in sync. Run it; use it as the outbox's Publisher and Tips.
type Client struct {
	cfg Config
	log *slog.Logger
	c   counters

	mu        sync.Mutex
	prov      Provider // the current session; nil while disconnected
	cursor    Cursor
	noticed   int
	usage     Usage
	lastSync  time.Time
	lastErr   string
	tips      map[uint32]cachedTips
	pushedSet map[Cursor]bool // pushed blocks filed beyond the cursor (dropped when fetched)

	synced chan struct{} // closed after the first complete fetch
	once   sync.Once
}

type cachedTips struct {
	ids []tangle.ID
	at  time.Time
}

// NewClient checks cfg and reads the provider's persisted cursor.
func NewClient(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Name == "" || cfg.DB == nil || cfg.Dial == nil || cfg.Filer == nil || cfg.Params.Name == "" {
		return nil, errors.New("light: Name, DB, Dial, Filer and Params are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.PageCount <= 0 {
		cfg.PageCount = 512
	}
	if cfg.PageBytes <= 0 {
		cfg.PageBytes = 4 << 20
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = time.Minute
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.TipsCache <= 0 {
		cfg.TipsCache = 2 * time.Second
	}
	cur, noticed, err := cfg.DB.state(ctx, cfg.Name)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, log: cfg.Log, cursor: cur, noticed: noticed, tips: map[uint32]cachedTips{},
		pushedSet: map[Cursor]bool{}, synced: make(chan struct{})}, nil
}

// Name is the provider's name.
func (c *Client) Name() string { return c.cfg.Name }

// Synced is closed once a session has fetched and filed everything the provider stored, and read the
// subscription's status (the first time).
func (c *Client) Synced() <-chan struct{} { return c.synced }

// Run connects, fetches from the cursor, files and follows the live push, reconnecting with backoff
// after every failure, until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	backoff := c.cfg.MinBackoff
	for {
		start := time.Now()
		err := c.runSession(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.setErr(err)
		c.log.Warn("light: storage provider session ended; reconnecting", "provider", c.cfg.Name, "err", err,
			"in", backoff)
		if time.Since(start) > 4*c.cfg.MaxBackoff {
			backoff = c.cfg.MinBackoff // a long session: start over
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// RunOnce runs one session: connect, fetch everything stored from the cursor, file it, release, check
// the quota, and return (a full node covering its downtime does this before it files live blocks).
func (c *Client) RunOnce(ctx context.Context) error {
	p, err := c.cfg.Dial(ctx)
	if err != nil {
		c.setErr(err)
		return fmt.Errorf("light: connect to %s: %w", c.cfg.Name, err)
	}
	defer p.Close()
	c.c.sessions.Add(1)
	// The usage before the catch-up releases what it fetches: how full the subscription got while
	// this device was off, the one moment a notice can tell the user the provider may have refused
	// mail (after it, the usage is low again).
	c.checkQuota(ctx, p)
	if err := c.catchUp(ctx, p); err != nil {
		c.setErr(err)
		return err
	}
	c.checkQuota(ctx, p)
	c.once.Do(func() { close(c.synced) })
	return nil
}

func (c *Client) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.lastErr = ""
	} else {
		c.lastErr = err.Error()
	}
}

func (c *Client) runSession(ctx context.Context) error {
	p, err := c.cfg.Dial(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer p.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.c.sessions.Add(1)
	// Watch first, then fetch: a block stored in between is pushed, fetched, or both.
	pushes, err := p.Watch(sctx)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	c.mu.Lock()
	c.prov = p
	c.tips = map[uint32]cachedTips{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.prov = nil
		c.mu.Unlock()
	}()
	c.checkQuota(sctx, p) // how full it got while this device was off (see RunOnce)
	if err := c.catchUp(sctx, p); err != nil {
		return err
	}
	c.setErr(nil)
	c.checkQuota(sctx, p)
	c.once.Do(func() { close(c.synced) })
	tick := time.NewTicker(c.cfg.StatusInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case pu, ok := <-pushes:
			if !ok {
				return errors.New("the provider ended the watch stream")
			}
			batch := []Pushed{pu}
		drain:
			for len(batch) < c.cfg.PageCount {
				select {
				case pu, ok := <-pushes:
					if !ok {
						break drain
					}
					batch = append(batch, pu)
				default:
					break drain
				}
			}
			gap, err := c.filePushed(sctx, p, batch)
			if err != nil {
				return err
			}
			if gap {
				if err := c.catchUp(sctx, p); err != nil {
					return err
				}
			}
		case <-tick.C:
			if err := c.catchUp(sctx, p); err != nil {
				return err
			}
			c.checkQuota(sctx, p)
		}
	}
}

type page struct {
	blocks []Pushed
	next   Cursor
	more   bool
	err    error
}

// catchUp fetches from the cursor to the provider's end, prefetching the next page while it files
// one, and after each page persists the cursor and releases up to it.
func (c *Client) catchUp(ctx context.Context, p Provider) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	after := c.cursor
	c.mu.Unlock()
	pages := make(chan page, 1)
	go func() {
		defer close(pages)
		for {
			bs, next, more, err := p.Fetch(fctx, after, c.cfg.PageCount, c.cfg.PageBytes)
			if err == nil && len(bs) == 0 && more {
				err = errors.New("the provider returned an empty page but says more are stored")
			}
			select {
			case pages <- page{bs, next, more, err}:
			case <-fctx.Done():
				return
			}
			if err != nil || !more {
				return
			}
			after = next
		}
	}()
	for pg := range pages {
		if pg.err != nil {
			return fmt.Errorf("fetch: %w", pg.err)
		}
		c.c.fetched.Add(uint64(len(pg.blocks)))
		if err := c.fileAndAdvance(ctx, p, pg.blocks, pg.next); err != nil {
			return err
		}
		if !pg.more {
			c.mu.Lock()
			c.lastSync = c.cfg.Clock()
			c.mu.Unlock()
		}
	}
	return ctx.Err()
}

// fileAndAdvance files the blocks that are new, then persists next as the cursor and releases up to it.
func (c *Client) fileAndAdvance(ctx context.Context, p Provider, ps []Pushed, next Cursor) error {
	c.mu.Lock()
	cur := c.cursor
	var fresh []Pushed
	for _, pu := range ps {
		if pu.Cursor <= cur || c.pushedSet[pu.Cursor] {
			delete(c.pushedSet, pu.Cursor)
			c.c.dups.Add(1)
			continue
		}
		fresh = append(fresh, pu)
	}
	c.mu.Unlock()
	if err := c.file(ctx, fresh); err != nil {
		return err
	}
	if next <= cur {
		return nil
	}
	return c.advance(ctx, p, next)
}

// advance persists the cursor and then releases up to it.
func (c *Client) advance(ctx context.Context, p Provider, next Cursor) error {
	if err := c.cfg.DB.setCursor(ctx, c.cfg.Name, next); err != nil {
		return err
	}
	c.mu.Lock()
	c.cursor = next
	for k := range c.pushedSet {
		if k <= next {
			delete(c.pushedSet, k)
		}
	}
	c.mu.Unlock()
	if err := p.Release(ctx, next); err != nil && ctx.Err() == nil {
		// Not fatal: the next release covers it; the provider keeps the blocks until then.
		c.log.Warn("light: release failed; will release with the next page", "provider", c.cfg.Name, "err", err)
	}
	return nil
}

// filePushed files pushed blocks not handed over yet. It advances the cursor when the pushes follow it
// directly, and reports a gap (a push beyond cursor+1) so that the caller fetches what may be lost.
func (c *Client) filePushed(ctx context.Context, p Provider, ps []Pushed) (gap bool, err error) {
	c.c.pushed.Add(uint64(len(ps)))
	c.mu.Lock()
	cur := c.cursor
	var fresh []Pushed
	for _, pu := range ps {
		if pu.Cursor <= cur || c.pushedSet[pu.Cursor] {
			c.c.dups.Add(1)
			continue
		}
		fresh = append(fresh, pu)
	}
	c.mu.Unlock()
	if len(fresh) == 0 {
		return false, nil
	}
	if err := c.file(ctx, fresh); err != nil {
		return false, err
	}
	c.mu.Lock()
	for _, pu := range fresh {
		c.pushedSet[pu.Cursor] = true
	}
	next := c.cursor
	for c.pushedSet[next+1] {
		next++
	}
	gap = len(c.pushedSet) > int(next-c.cursor)
	c.mu.Unlock()
	if next > cur {
		if err := c.advance(ctx, p, next); err != nil {
			return false, err
		}
	}
	return gap, nil
}

// file validates blocks (everything but expiry) and hands the valid ones to the Filer.
func (c *Client) file(ctx context.Context, ps []Pushed) error {
	if len(ps) == 0 {
		return nil
	}
	now := c.cfg.Clock()
	bs := make([]*tangle.Block, 0, len(ps))
	for _, pu := range ps {
		c.c.bytes.Add(uint64(len(pu.Block)))
		at := now
		if t, ok := issuedAt(pu.Block); ok && t.Before(now) {
			at = t // stored blocks may be past their TTL: validate as of their issuing time
		}
		b, err := c.cfg.Params.Validate(pu.Block, at)
		if err != nil {
			c.c.invalid.Add(1)
			c.log.Debug("light: invalid block from the provider skipped", "provider", c.cfg.Name, "err", err)
			continue
		}
		bs = append(bs, b)
	}
	if err := c.cfg.Filer.FileBatch(ctx, bs); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	c.c.filed.Add(uint64(len(bs)))
	return nil
}

// issuedAt reads a block's issuing time without decoding it (protocol.md §2).
func issuedAt(raw []byte) (time.Time, bool) {
	b, err := tangle.Decode(raw)
	if err != nil {
		return time.Time{}, false
	}
	return b.IssuedAt(), true
}

// checkQuota reads the subscription's usage and files the 80 % and full notices, once each.
func (c *Client) checkQuota(ctx context.Context, p Provider) {
	u, err := p.Status(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("light: reading the subscription's status failed", "provider", c.cfg.Name, "err", err)
		}
		return
	}
	c.mu.Lock()
	c.usage = u
	noticed := c.noticed
	c.mu.Unlock()
	pct := u.Percent()
	level := noticed
	switch {
	case pct < 80:
		level = 0
	case pct >= 100 && noticed < 100:
		level = 100
		c.notify(ctx, "Your mail storage is full",
			fmt.Sprintf("Your subscription with the storage provider %s is full (%d of %d bytes used).\r\n"+
				"The provider now refuses new blocks for you: mail sent to you while this device is off may be lost.\r\n"+
				"Keep this device connected, or ask the provider's operator for a larger quota.\r\n",
				c.cfg.Name, u.UsedBytes, u.QuotaBytes))
	case pct >= 80 && noticed < 80:
		level = 80
		c.notify(ctx, "Your mail storage is 80 % full",
			fmt.Sprintf("Your subscription with the storage provider %s is %d %% full (%d of %d bytes used).\r\n"+
				"When it is full the provider refuses new blocks for you.\r\n"+
				"Keep this device connected (that releases what it has fetched), or ask for a larger quota.\r\n",
				c.cfg.Name, pct, u.UsedBytes, u.QuotaBytes))
	}
	if level == noticed {
		return
	}
	if err := c.cfg.DB.setNoticed(ctx, c.cfg.Name, level); err != nil {
		c.log.Warn("light: recording a quota notice failed", "err", err)
		return
	}
	c.mu.Lock()
	c.noticed = level
	c.mu.Unlock()
}

func (c *Client) notify(ctx context.Context, subject, body string) {
	c.log.Warn("light: "+subject, "provider", c.cfg.Name)
	if c.cfg.Notify == nil {
		return
	}
	if err := c.cfg.Notify(ctx, subject, body); err != nil {
		c.log.Warn("light: filing a quota notice failed", "err", err)
		return
	}
	c.c.notices.Add(1)
}

// Status returns the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{Provider: c.cfg.Name, Connected: c.prov != nil, Cursor: c.cursor, Usage: c.usage,
		LastSync: c.lastSync, LastError: c.lastErr, Stats: c.Stats()}
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	k := &c.c
	return Stats{Fetched: k.fetched.Load(), Pushed: k.pushed.Load(), Bytes: k.bytes.Load(), Duplicates: k.dups.Load(),
		Invalid: k.invalid.Load(), Filed: k.filed.Load(), Sessions: k.sessions.Load(), Published: k.published.Load(),
		Refused: k.refused.Load(), Notices: k.notices.Load()}
}

func (c *Client) current() Provider {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prov
}
