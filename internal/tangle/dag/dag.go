package dag

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tanglemail/tanglemail/internal/sqlitedb"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Errors of the store.
var (
	// ErrNotFound is returned by Get for an id that is not stored.
	ErrNotFound = errors.New("block not found")
	// ErrClosed is returned by every write after Close.
	ErrClosed = errors.New("dag: store closed")
	// ErrCorrupt wraps the error of Open when the file is not a SQLite database or is damaged.
	ErrCorrupt = errors.New("dag: store file is not a valid database")
	// ErrSchema wraps the error of Open when the file's schema is newer than this program, or the store
	// belongs to another network.
	ErrSchema = errors.New("dag: incompatible store")
)

// Option configures Open.
type Option func(*options)

type options struct {
	now      func() time.Time
	window   time.Duration
	maxBatch int
	onReject func(id tangle.ID, err error)
	readers  int

	cacheSize int // recent-block cache entries (tests shrink it)
	budget    int64
	holdNew   Hold
}

// WithClock replaces the clock (tests). It decides tip eligibility, what IDsSince counts as expired and
// the first-reference time of missing parents. Prune takes its time as an argument.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithBatchWindow sets the group-commit window: how long the writer waits for more Put, GiveUp and
// Prune requests after the first one of a batch (default DefaultBatchWindow). The wait ends early when
// the batch reaches WithMaxBatch blocks or when every caller that is inside a write call is already in
// the batch. 0 or less: never wait, commit whatever is queued.
func WithBatchWindow(d time.Duration) Option { return func(o *options) { o.window = d } }

// WithMaxBatch caps the number of blocks in one transaction (default DefaultMaxBatch). A single Put of
// more blocks is still committed in one transaction.
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = n } }

// WithRejectHandler registers fn to be told of every block the store rejects for breaking the
// parent-age rule (protocol.md §2.1), whether at Put time or later, when a late parent arrives and the
// stored child is deleted. err wraps tangle.ErrParentAge. fn runs on the writer goroutine after the
// transaction committed and before the Put callers of that batch return: it must be quick and must not
// call Put, GiveUp or Prune (the writer is waiting for it); reads are fine.
func WithRejectHandler(fn func(id tangle.ID, err error)) Option {
	return func(o *options) { o.onReject = fn }
}

// WithReadConns sets the number of read connections (default 4).
func WithReadConns(n int) Option { return func(o *options) { o.readers = n } }

// Defaults of the options.
const (
	DefaultBatchWindow = 2 * time.Millisecond
	DefaultMaxBatch    = 1024
	DefaultParents     = 4
)

// Store is the block store. Its methods are safe for concurrent use.
type Store struct {
	params tangle.Params
	opts   options
	path   string

	w  *sql.DB // one connection, owned by the writer goroutine
	r  *sql.DB // read-only connections
	wr *writer

	// closeMu orders Close after every request already sent: senders hold it for reading.
	closeMu sync.RWMutex
	closed  bool
	reqs    chan *request
	done    chan struct{} // closed when the writer goroutine has exited
	pending atomic.Int64  // write requests sent and not yet completed

	batches, batched atomic.Int64 // transactions committed by the writer, and the blocks (or ops) in them
	evicted          atomic.Int64 // blocks evicted for the budget since Open

	tips tipPool

	// Read statements (prepared on the read pool).
	stHas, stGet, stChildren, stSolid, stMissing, stSince, stStats *sql.Stmt
}

// Open opens the store at path, creating the file if needed, and brings its schema up to date. The
// directory must exist. The store is bound to params' network: opening it with another network fails
// with ErrSchema.
func Open(path string, params tangle.Params, opts ...Option) (*Store, error) {
	o := options{now: time.Now, window: DefaultBatchWindow, maxBatch: DefaultMaxBatch, readers: 4, cacheSize: recentCap}
	for _, f := range opts {
		f(&o)
	}
	if o.maxBatch < 1 {
		o.maxBatch = 1
	}
	if o.readers < 1 {
		o.readers = 1
	}
	if dir := filepath.Dir(path); dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("dag: open %s: directory: %w", path, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("dag: open %s: %s is not a directory", path, dir)
		}
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("dag: open %s: is a directory", path)
	}
	s := &Store{params: params, opts: o, path: path, reqs: make(chan *request), done: make(chan struct{})}
	if err := s.open(); err != nil {
		s.closeDBs()
		return nil, err
	}
	go s.run()
	return s, nil
}

// dbOptions are the connections' settings. Every connection: WAL, synchronous=FULL (see the package
// doc), a busy timeout, no foreign keys (edges reference parents that are not stored yet).
func dbOptions(readOnly bool, conns int) sqlitedb.Options {
	o := sqlitedb.Options{MaxConns: conns, Pragmas: []string{"busy_timeout(10000)", "journal_mode(WAL)",
		"synchronous(FULL)", "foreign_keys(0)", "cache_size(-16384)"}} // cache: 16 MiB per connection
	if readOnly {
		o.Pragmas = append(o.Pragmas, "query_only(1)")
	} else {
		o.Pragmas = append(o.Pragmas, "journal_size_limit(67108864)", "wal_autocheckpoint(8192)")
		o.Immediate = true
		o.Mode = 0o600 // the writer opens first and creates the files: owner only, as every database
	}
	return o
}

func (s *Store) open() error {
	var err error
	if s.w, err = sqlitedb.Open(s.path, dbOptions(false, 1)); err != nil {
		return s.wrapOpen(err)
	}
	ctx := context.Background()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return s.wrapOpen(err)
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close()
		return s.wrapOpen(err)
	}
	if err := s.checkNetwork(ctx, conn); err != nil {
		conn.Close()
		return s.wrapOpen(err)
	}
	if s.wr, err = newWriter(s, conn); err != nil {
		conn.Close()
		return s.wrapOpen(err)
	}
	if s.r, err = sqlitedb.Open(s.path, dbOptions(true, s.opts.readers)); err != nil {
		return s.wrapOpen(err)
	}
	if err := s.prepareReads(); err != nil {
		return s.wrapOpen(err)
	}
	if err := s.rebuildTips(ctx); err != nil {
		return s.wrapOpen(err)
	}
	return nil
}

// wrapOpen names the file and classifies SQLite's "not a database" and "corrupt" results as ErrCorrupt.
func (s *Store) wrapOpen(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, s.path, err)
		}
	}
	return fmt.Errorf("dag: open %s: %w", s.path, err)
}

// checkNetwork records the network on first use and refuses a store of another network.
func (s *Store) checkNetwork(ctx context.Context, conn *sql.Conn) error {
	var name string
	err := conn.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'network'`).Scan(&name)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = conn.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('network', ?)`, s.params.Name)
		return err
	case err != nil:
		return err
	case name != s.params.Name:
		return fmt.Errorf("%w: the store belongs to network %q, not %q", ErrSchema, name, s.params.Name)
	}
	return nil
}

// Close flushes the requests already made, stops the writer and closes the database. Writes after Close
// fail with ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.closeMu.Unlock()
	<-s.done
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.wr != nil {
		errs = append(errs, s.wr.close())
	}
	for _, st := range []*sql.Stmt{s.stHas, s.stGet, s.stChildren, s.stSolid, s.stMissing, s.stSince, s.stStats} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// Params returns the network parameters the store was opened with.
func (s *Store) Params() tangle.Params { return s.params }
