package dag

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Cursor is a position in a shard's (time, id) order, for IDsSince paging.
type Cursor struct {
	Time int64 // issuing time, Unix ms
	ID   tangle.ID
}

// Less reports whether c sorts before d in (time, id) order.
func (c Cursor) Less(d Cursor) bool {
	if c.Time != d.Time {
		return c.Time < d.Time
	}
	return bytes.Compare(c.ID[:], d.ID[:]) < 0
}

// Stats are the store's counts.
type Stats struct {
	Blocks, Solid, Unsolid int
	Missing                int            // missing parents not given up
	Tips                   map[uint32]int // eligible tips now, per shard (shards without tips are absent)
	Bytes                  int64          // total size of the stored blocks' encodings
	HeldBytes              int64          // of Bytes, blocks with a hold (never evicted for the budget)
	Budget                 int64          // WithBudget (0: none)
	Evicted                int64          // blocks evicted for the budget since Open
}

func (s *Store) prepareReads() error {
	ctx := context.Background()
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = s.r.PrepareContext(ctx, q)
		return st
	}
	s.stHas = prep(`SELECT EXISTS (SELECT 1 FROM blocks WHERE id = ?1)
		OR EXISTS (SELECT 1 FROM missing WHERE id = ?1 AND state = 3)`)
	s.stGet = prep(`SELECT raw FROM blocks WHERE id = ?`)
	s.stChildren = prep(`SELECT c.id FROM edges e JOIN blocks c ON c.nid = e.child
		WHERE e.parent IN (SELECT nid FROM blocks WHERE id = ?1 UNION ALL SELECT nid FROM missing WHERE id = ?1)
		ORDER BY c.id`)
	s.stSolid = prep(`SELECT solid FROM blocks WHERE id = ?`)
	s.stMissing = prep(`SELECT id FROM missing WHERE state = 0 ORDER BY nid LIMIT ?`)
	s.stSince = prep(`SELECT time, id FROM blocks
		WHERE shard = ?1 AND time >= ?2 AND (time, id) > (?3, ?4) AND expires > ?5
		ORDER BY time, id LIMIT ?6`)
	s.stStats = prep(`SELECT
		(SELECT value FROM meta WHERE key = 'blocks'),
		(SELECT value FROM meta WHERE key = 'solid'),
		(SELECT value FROM meta WHERE key = 'bytes'),
		(SELECT COUNT(*) FROM missing WHERE state = 0),
		(SELECT COALESCE(SUM(length(raw)), 0) FROM blocks WHERE hold != 0)`)
	return err
}

// Has reports whether the block is stored.
func (s *Store) Has(id tangle.ID) (bool, error) {
	var ok bool
	if err := s.stHas.QueryRow(id[:]).Scan(&ok); err != nil {
		return false, fmt.Errorf("dag: has: %w", err)
	}
	return ok, nil
}

// Get returns the stored block, decoded afresh from its stored encoding, or ErrNotFound.
func (s *Store) Get(id tangle.ID) (*tangle.Block, error) {
	var raw []byte
	if err := s.stGet.QueryRow(id[:]).Scan(&raw); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("dag: get: %w", err)
	}
	b, err := tangle.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: block %s: %w", ErrCorrupt, id.Short(), err)
	}
	if b.ID() != id {
		return nil, fmt.Errorf("%w: block %s is stored under id %s", ErrCorrupt, b.ID().Short(), id.Short())
	}
	return b, nil
}

// Children lists the stored blocks that name id as a parent, ascending. id need not be stored. Edges
// to Genesis are not recorded: Children(tangle.Genesis) is empty.
func (s *Store) Children(id tangle.ID) ([]tangle.ID, error) {
	rows, err := s.stChildren.Query(id[:])
	if err != nil {
		return nil, fmt.Errorf("dag: children: %w", err)
	}
	defer rows.Close()
	var out []tangle.ID
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("dag: children: %w", err)
		}
		out = append(out, idOf(raw))
	}
	return out, rows.Err()
}

// IsSolid reports whether a stored block is solid: every parent is Genesis, or stored and solid, or given
// up (GiveUp), rejected, or pruned while the block was stored. Genesis is solid; an id that is not
// stored is not.
func (s *Store) IsSolid(id tangle.ID) (bool, error) {
	if id == tangle.Genesis {
		return true, nil
	}
	var solid bool
	if err := s.stSolid.QueryRow(id[:]).Scan(&solid); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return false, fmt.Errorf("dag: solid: %w", err)
	}
	return solid, nil
}

// Missing lists parent ids referenced by stored blocks but neither stored nor given up, in the order
// they were first referenced, at most limit.
func (s *Store) Missing(limit int) ([]tangle.ID, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.stMissing.Query(limit)
	if err != nil {
		return nil, fmt.Errorf("dag: missing: %w", err)
	}
	defer rows.Close()
	var out []tangle.ID
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("dag: missing: %w", err)
		}
		out = append(out, idOf(raw))
	}
	return out, rows.Err()
}

// IDsSince lists the stored, unexpired (at the store's clock) blocks of shard issued at or after since,
// in (time, id) order, strictly after the cursor after (the zero Cursor: from the start), at most limit.
// To page, pass the last Cursor returned.
func (s *Store) IDsSince(shard uint32, since time.Time, after Cursor, limit int) ([]Cursor, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.stSince.Query(int64(shard), since.UnixMilli(), after.Time, after.ID[:], s.opts.now().UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("dag: ids since: %w", err)
	}
	defer rows.Close()
	var out []Cursor
	for rows.Next() {
		var (
			c   Cursor
			raw []byte
		)
		if err := rows.Scan(&c.Time, &raw); err != nil {
			return nil, fmt.Errorf("dag: ids since: %w", err)
		}
		c.ID = idOf(raw)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Stats returns the store's counts. Blocks, Solid and Bytes are running totals kept in the database by
// the writer; Missing is counted; Tips come from the in-memory pool at the store's clock.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	var bytes int64
	if err := s.stStats.QueryRow().Scan(&st.Blocks, &st.Solid, &bytes, &st.Missing, &st.HeldBytes); err != nil {
		return Stats{}, fmt.Errorf("dag: stats: %w", err)
	}
	st.Bytes = bytes
	st.Budget = s.opts.budget
	st.Evicted = s.evicted.Load()
	st.Unsolid = st.Blocks - st.Solid
	st.Tips = s.tipCounts(s.opts.now().UnixMilli())
	return st, nil
}

// idOf converts a stored id column. Ids are always 32 bytes; a damaged row gives a wrong id rather
// than a panic.
func idOf(raw []byte) (id tangle.ID) {
	copy(id[:], raw)
	return id
}
