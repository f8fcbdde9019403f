package store

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// maxCachedStmts bounds a stmtCache: the store's queries are a fixed set of texts (a few dozen), but
// some are built at run time (search), and those beyond the bound run unprepared.
const maxCachedStmts = 256

// stmtCache keeps the prepared statements of one database by query text, so that a query is compiled
// by SQLite once per connection (database/sql keeps each Stmt prepared on every connection it has run
// on, and Tx.StmtContext reuses it) instead of on every call. A query met for the first time runs
// unprepared and is prepared after its transaction ends (prepare): preparing on the database inside a
// transaction would wait for a free connection, which the write database (one connection) never has.
// It is safe for concurrent use.
type stmtCache struct {
	db       *sql.DB
	mu       sync.Mutex
	m        map[string]*sql.Stmt
	pending  map[string]bool // met, to prepare
	prepared atomic.Int64    // Stmts prepared, for the tests
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// stmt returns q's statement bound to tx, or nil if q is not prepared yet (the caller runs q directly).
func (c *stmtCache) stmt(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.m[q]
	if !ok && len(c.m)+len(c.pending) < maxCachedStmts {
		c.pending[q] = true
	}
	c.mu.Unlock()
	if st == nil {
		return nil
	}
	return tx.StmtContext(ctx, st)
}

// prepare prepares the queries met since the last call; the caller holds no transaction of the
// database. It prepares without holding mu: preparing may wait for a free connection, and the
// transactions that hold them may be waiting on mu in stmt. A query that fails to prepare is dropped:
// it runs unprepared, and fails there.
func (c *stmtCache) prepare() {
	c.mu.Lock()
	var qs []string
	for q := range c.pending {
		qs = append(qs, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range qs {
		st, err := c.db.PrepareContext(context.Background(), q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if _, ok := c.m[q]; ok || len(c.m) >= maxCachedStmts {
			st.Close() // another reader prepared it first, or the cache filled
		} else {
			c.m[q] = st
			c.prepared.Add(1)
		}
		c.mu.Unlock()
	}
}

// close closes the cached statements.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
	clear(c.pending)
}

// cachedTx is a transaction whose queries use a stmtCache. The read transactions of the store are
// cachedTx; Tx (the write transaction) uses one for its statements.
type cachedTx struct {
	*sql.Tx
	c *stmtCache
}

func (t cachedTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.c.stmt(ctx, t.Tx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

func (t cachedTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.c.stmt(ctx, t.Tx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, q, args...)
}

func (t cachedTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.c.stmt(ctx, t.Tx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}
