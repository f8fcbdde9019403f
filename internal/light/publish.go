package light

import (
	"context"
	"errors"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Publish hands a finished block (sealed, proof of work done) to the provider to publish; it implements
// outbox.Publisher. A refusal is a *RefusedError; without a session it is ErrNotConnected.
func (c *Client) Publish(ctx context.Context, b *tangle.Block) error {
	p := c.current()
	if p == nil {
		return ErrNotConnected
	}
	err := p.Publish(ctx, b.Raw)
	if re, ok := errors.AsType[*RefusedError](err); ok {
		c.c.refused.Add(1)
		if re.Provider == "" {
			re.Provider = c.cfg.Name
		}
		return re
	}
	if err != nil {
		return err
	}
	c.c.published.Add(1)
	return nil
}

// PeerCount is 1 while a session is up, else 0 (the outbox waits rather than publish into nothing).
func (c *Client) PeerCount() int {
	if c.current() != nil {
		return 1
	}
	return 0
}

// SelectParents asks the provider for tips (cached for TipsCache); it implements outbox.Tips. n is
// clamped to 2..8 (n ≤ 0 means 4, as dag.DefaultParents). Without a session, or when the provider fails, it returns the last
// tips it had, or the genesis.
func (c *Client) SelectParents(shard uint32, n int) []tangle.ID {
	if n <= 0 {
		n = defaultParents
	}
	n = max(min(n, tangle.MaxParents), 2)
	c.mu.Lock()
	ct, ok := c.tips[shard]
	p := c.prov
	c.mu.Unlock()
	if ok && time.Since(ct.at) < c.cfg.TipsCache && len(ct.ids) > 0 {
		return ct.ids[:min(n, len(ct.ids))]
	}
	if p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ids, err := p.Tips(ctx, shard, n)
		cancel()
		if err == nil && len(ids) > 0 {
			ids = tangle.SortParents(ids)
			c.mu.Lock()
			c.tips[shard] = cachedTips{ids: ids, at: time.Now()}
			c.mu.Unlock()
			return ids[:min(n, len(ids))]
		}
		if err != nil {
			c.log.Debug("light: tips from the provider failed", "provider", c.cfg.Name, "err", err)
		}
	}
	if ok && len(ct.ids) > 0 {
		return ct.ids[:min(n, len(ct.ids))]
	}
	return []tangle.ID{tangle.Genesis}
}

// defaultParents is dag.DefaultParents: how many parents a block gets when the caller does not say.
const defaultParents = 4

// Clients are the light client's providers as one outbox.Publisher and outbox.Tips: a block goes to the
// first connected provider that takes it; tips come from the first connected one.
type Clients []*Client

// Publish tries each connected provider in turn; it returns the last refusal or error when none took
// the block.
func (cs Clients) Publish(ctx context.Context, b *tangle.Block) error {
	err := ErrNotConnected
	for _, c := range cs {
		if c.current() == nil {
			continue
		}
		if err = c.Publish(ctx, b); err == nil {
			return nil
		}
	}
	return err
}

// PeerCount is the number of connected providers.
func (cs Clients) PeerCount() int {
	n := 0
	for _, c := range cs {
		n += c.PeerCount()
	}
	return n
}

// SelectParents asks the first connected provider (or the first one at all) for tips.
func (cs Clients) SelectParents(shard uint32, n int) []tangle.ID {
	for _, c := range cs {
		if c.current() != nil {
			return c.SelectParents(shard, n)
		}
	}
	if len(cs) > 0 {
		return cs[0].SelectParents(shard, n)
	}
	return []tangle.ID{tangle.Genesis}
}
