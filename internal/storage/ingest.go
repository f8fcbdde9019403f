package storage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Offer stores, in one transaction, each block for every active subscription whose prefix matches its
// route tag (protocol.md §12.4). A block over a subscription's quota, or over the disk cap, is refused
// for that subscription (counted; nothing stored is ever evicted for it). A block already stored for a
// subscription is skipped. When Offer returns nil the blocks are committed to disk; then they are
// pushed to the subscriptions' watchers.
func (p *Provider) Offer(ctx context.Context, blocks []*tangle.Block) error {
	if len(blocks) == 0 {
		return nil
	}
	now := p.cfg.Now().UnixMilli()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	type target struct {
		s                       *sub
		nextSeq, used, n, refus uint64
	}
	p.mu.Lock()
	var targets []*target
	for _, s := range p.subs {
		if s.state == wire.Active && s.until > now {
			targets = append(targets, &target{s: s, nextSeq: s.nextSeq, used: s.used, n: s.blocks, refus: s.refused})
		}
	}
	total := p.used
	p.mu.Unlock()
	if len(targets) == 0 {
		return nil
	}
	type pushed struct {
		id wire.SubID
		p  wire.Pushed
	}
	var pushes []pushed
	sqlTx, err := p.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: offer: %w", err)
	}
	defer sqlTx.Rollback()
	// Not a block the subscription holds already, nor one it released (offered again at a restart).
	ins, err := sqlTx.PrepareContext(ctx, `INSERT OR IGNORE INTO blocks (sub, seq, id, size, stored_at, raw)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS (SELECT 1 FROM released WHERE sub = ?1 AND id = ?3)`)
	if err != nil {
		return fmt.Errorf("storage: offer: %w", err)
	}
	defer ins.Close()
	// Index the subscriptions by the first byte of their prefix, so a block is compared only with the
	// subscriptions that can match it (a prefix of k < 8 bits sits in 2^(8−k) buckets).
	var byFirst [256][]*target
	for _, t := range targets {
		pf := t.s.prefix
		if pf.Bits >= 8 {
			byFirst[pf.Tag[0]] = append(byFirst[pf.Tag[0]], t)
			continue
		}
		span := 1 << (8 - pf.Bits)
		base := int(pf.Tag[0]) &^ (span - 1)
		for i := range span {
			byFirst[base+i] = append(byFirst[base+i], t)
		}
	}
	var refused uint64
	for _, b := range blocks {
		size := uint64(len(b.Raw))
		bid := b.ID()
		for _, t := range byFirst[b.Tag[0]] {
			if !t.s.prefix.Matches(b.Tag) {
				continue
			}
			if t.used+size > t.s.quota || total+size > uint64(p.cfg.CapBytes) {
				t.refus++
				refused++
				continue
			}
			res, err := ins.ExecContext(ctx, t.s.id[:], t.nextSeq, bid[:], size, now, b.Raw)
			if err != nil {
				return fmt.Errorf("storage: offer: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // already stored for this subscription, or released by it
			}
			pushes = append(pushes, pushed{t.s.id, wire.Pushed{Cursor: wire.Cursor(t.nextSeq), Block: b.Raw}})
			t.nextSeq++
			t.used += size
			t.n++
			total += size
		}
	}
	upd, err := sqlTx.PrepareContext(ctx, `UPDATE subs SET next_seq = ?, used_bytes = ?, blocks = ?, refused = ? WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("storage: offer: %w", err)
	}
	defer upd.Close()
	changed := 0
	for _, t := range targets {
		if t.nextSeq == t.s.nextSeq && t.refus == t.s.refused {
			continue
		}
		changed++
		if _, err := upd.ExecContext(ctx, t.nextSeq, t.used, t.n, t.refus, t.s.id[:]); err != nil {
			return fmt.Errorf("storage: offer: %w", err)
		}
	}
	if changed == 0 {
		return nil
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("storage: offer: %w", err)
	}
	p.mu.Lock()
	var storedBytes uint64
	for _, t := range targets {
		storedBytes += t.used - t.s.used
		t.s.nextSeq, t.s.used, t.s.blocks, t.s.refused = t.nextSeq, t.used, t.n, t.refus
	}
	p.used = total
	for _, ps := range pushes {
		for ch := range p.watchers[ps.id] {
			select {
			case ch <- ps.p:
			default:
				p.ctr.pushDropped.Add(1) // lossy by design: the client fetches from its cursor
			}
		}
	}
	p.mu.Unlock()
	p.ctr.stored.Add(uint64(len(pushes)))
	p.ctr.storedBytes.Add(storedBytes)
	p.ctr.refusedQuota.Add(refused)
	return nil
}

// fetch reads blocks of s strictly after cursor after (protocol.md §12.3).
func (p *Provider) fetch(ctx context.Context, id wire.SubID, after wire.Cursor, maxCount, maxBytes uint32) (wire.MsgBlocks, error) {
	if maxCount == 0 {
		maxCount = 512
	}
	maxCount = min(maxCount, wire.MaxPageCount)
	if maxBytes == 0 || maxBytes > wire.MaxPageBytes {
		maxBytes = wire.MaxPageBytes
	}
	rows, err := p.r.QueryContext(ctx, `SELECT seq, raw FROM blocks WHERE sub = ? AND seq > ? ORDER BY seq LIMIT ?`,
		id[:], uint64(after), maxCount+1)
	if err != nil {
		return wire.MsgBlocks{}, err
	}
	defer rows.Close()
	out := wire.MsgBlocks{Next: after}
	bytes := 0
	for rows.Next() {
		var seq uint64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return wire.MsgBlocks{}, err
		}
		if len(out.Blocks) >= int(maxCount) || (len(out.Blocks) > 0 && bytes+len(raw) > int(maxBytes)) {
			out.More = true
			break
		}
		out.Blocks = append(out.Blocks, wire.Pushed{Cursor: wire.Cursor(seq), Block: raw})
		out.Next = wire.Cursor(seq)
		bytes += len(raw)
	}
	if err := rows.Err(); err != nil {
		return wire.MsgBlocks{}, err
	}
	p.ctr.fetched.Add(uint64(len(out.Blocks)))
	return out, nil
}

// release deletes the blocks of id with a cursor ≤ upTo, committed before it returns, and remembers
// their ids until no block store can hold them any more (MaxTTL), so that they are not stored again.
func (p *Provider) release(ctx context.Context, id wire.SubID, upTo wire.Cursor) error {
	until := p.cfg.Now().Add(time.Duration(tangle.MaxTTL) * time.Second).UnixMilli()
	return p.deleteBlocks(ctx, id, `seq <= ?`, uint64(upTo), until)
}

// deleteBlocks deletes the blocks of id matching cond and updates the usage, in one transaction;
// with remember > 0 their ids go into released until then (Unix ms).
func (p *Provider) deleteBlocks(ctx context.Context, id wire.SubID, cond string, arg any, remember int64) error {
	return p.writeTx(ctx, func(tx *sql.Tx) (func(), error) {
		var n, bytes uint64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blocks WHERE sub = ? AND `+cond, id[:], arg).Scan(&n, &bytes); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		if remember > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO released (sub, id, expires)
				SELECT sub, id, ? FROM blocks WHERE sub = ? AND `+cond, remember, id[:], arg); err != nil {
				return nil, err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE sub = ? AND `+cond, id[:], arg); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE subs SET used_bytes = used_bytes - ?, blocks = blocks - ? WHERE id = ?`, bytes, n, id[:]); err != nil {
			return nil, err
		}
		return func() {
			p.mu.Lock()
			if s, ok := p.subs[id]; ok {
				s.used -= bytes
				s.blocks -= n
			}
			p.used -= bytes
			p.mu.Unlock()
			p.ctr.released.Add(n)
		}, nil
	})
}

// writeTx runs fn in a write transaction, under wmu and refused once the provider is closed, and commits
// it; then, still under wmu, it runs the function fn returned (the in-memory bookkeeping of what was
// committed). fn returning no function and no error means nothing to write: the transaction is rolled
// back.
func (p *Provider) writeTx(ctx context.Context, fn func(tx *sql.Tx) (committed func(), err error)) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	tx, err := p.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	committed, err := fn(tx)
	if err != nil || committed == nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	committed()
	return nil
}

// Prune applies retention and expiry at the provider's clock (protocol.md §12.5): blocks stored longer
// than their subscription's retention are deleted; an active subscription past its expiry becomes
// expired; an expired one's blocks and row are deleted ExpiredGrace later; a pending one is deleted
// PendingTTL after creation. It returns the blocks deleted.
func (p *Provider) Prune(ctx context.Context) (int, error) {
	now := p.cfg.Now()
	nowMs := now.UnixMilli()
	p.mu.Lock()
	var subs []sub
	for _, s := range p.subs {
		subs = append(subs, *s)
	}
	p.mu.Unlock()
	if err := p.pruneBlobCharges(ctx, nowMs); err != nil {
		return 0, err
	}
	if err := p.writeTx(ctx, func(tx *sql.Tx) (func(), error) {
		_, err := tx.ExecContext(ctx, `DELETE FROM released WHERE expires <= ?`, nowMs)
		return func() {}, err
	}); err != nil {
		return 0, err
	}
	deleted := 0
	for _, s := range subs {
		before := s.blocks
		switch {
		case s.state == wire.Pending && now.Sub(time.UnixMilli(s.created)) > p.cfg.PendingTTL,
			s.state != wire.Pending && s.until+p.cfg.ExpiredGrace.Milliseconds() <= nowMs:
			if err := p.deleteSub(ctx, s.id); err != nil {
				return deleted, err
			}
			deleted += int(before)
			continue
		case s.state == wire.Active && s.until <= nowMs:
			if err := p.setState(ctx, s.id, wire.Expired); err != nil {
				return deleted, err
			}
		}
		if s.state != wire.Pending && s.blocks > 0 {
			cut := now.Add(-time.Duration(s.retention) * day).UnixMilli()
			if err := p.deleteBlocks(ctx, s.id, `stored_at < ?`, cut, 0); err != nil {
				return deleted, err
			}
			if after, ok := p.lookup(s.id); ok {
				deleted += int(before - after.blocks)
			}
		}
	}
	return deleted, nil
}

func (p *Provider) setState(ctx context.Context, id wire.SubID, st wire.SubState) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.isClosed() {
		return ErrClosed
	}
	if _, err := p.w.ExecContext(ctx, `UPDATE subs SET state = ? WHERE id = ?`, st, id[:]); err != nil {
		return err
	}
	p.mu.Lock()
	if s, ok := p.subs[id]; ok {
		s.state = st
	}
	p.mu.Unlock()
	return nil
}

func (p *Provider) deleteSub(ctx context.Context, id wire.SubID) error {
	return p.writeTx(ctx, func(tx *sql.Tx) (func(), error) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE sub = ?`, id[:]); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM blob_charges WHERE sub = ?`, id[:]); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM released WHERE sub = ?`, id[:]); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM subs WHERE id = ?`, id[:]); err != nil {
			return nil, err
		}
		return func() {
			p.mu.Lock()
			if s, ok := p.subs[id]; ok {
				p.used -= s.used
				delete(p.subs, id)
			}
			p.mu.Unlock()
		}, nil
	})
}

// watch registers a push channel for id; the returned function unregisters it.
func (p *Provider) watch(id wire.SubID) (chan wire.Pushed, func()) {
	ch := make(chan wire.Pushed, 256)
	p.mu.Lock()
	m := p.watchers[id]
	if m == nil {
		m = map[chan wire.Pushed]struct{}{}
		p.watchers[id] = m
	}
	m[ch] = struct{}{}
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		delete(p.watchers[id], ch)
		if len(p.watchers[id]) == 0 {
			delete(p.watchers, id)
		}
		p.mu.Unlock()
	}
}
