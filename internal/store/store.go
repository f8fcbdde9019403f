package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tanglemail/tanglemail/internal/sqlitedb"
	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, CGO_ENABLED=0)
)

// Errors. Callers classify with errors.Is; front doors map them to protocol responses (e.g.
// ErrNoMailbox to IMAP NO [NONEXISTENT] or [TRYCREATE], ErrMailboxExists to [ALREADYEXISTS]).
var (
	ErrClosed         = errors.New("store: closed")
	ErrSchemaTooNew   = errors.New("store: database schema is newer than this program")
	ErrNoMailbox      = errors.New("store: no such mailbox")
	ErrMailboxExists  = errors.New("store: mailbox already exists")
	ErrInvalidName    = errors.New("store: invalid mailbox name")
	ErrProtected      = errors.New("store: mailbox cannot be deleted")
	ErrSameMailbox    = errors.New("store: source and destination mailbox are the same")
	ErrNoMessage      = errors.New("store: no such message")
	ErrInvalidFlag    = errors.New("store: invalid flag")
	ErrUIDsExhausted  = errors.New("store: mailbox has used all UIDs")
	ErrHistoryGone    = errors.New("store: changes before this modseq are no longer known")
	ErrNoOutboxItem   = errors.New("store: no such outbox item or recipient")
	ErrBadTransition  = errors.New("store: outbox recipient state transition not allowed")
	ErrInvalidOutbox  = errors.New("store: invalid outbox item")
	ErrNoContact      = errors.New("store: no such contact")
	ErrContactExists  = errors.New("store: petname already in use")
	ErrInvalidContact = errors.New("store: invalid petname or address")
)

const (
	defaultChangeLimit = 10000
	busyTimeoutMillis  = 10000
	readConns          = 4
)

// Option configures Open.
type Option func(*options)

type options struct {
	clock       func() time.Time
	uidValidity func() uint32
	changeLimit int
	// secureDelete zeroes the pages SQLite frees (WithSecureDelete).
	secureDelete bool
}

// WithClock replaces the clock (internal dates of messages appended without one, outbox and replay
// times). Tests use it.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithUIDValidity replaces the generator of UIDVALIDITY values for new mailboxes. The store still makes
// each value greater than the last one it handed out (see the package notes), so a generator returning
// 1, 2, 3, … gives exactly those values.
func WithUIDValidity(next func() uint32) Option {
	return func(o *options) { o.uidValidity = next }
}

// WithSecureDelete makes SQLite overwrite the content it deletes with zeros (PRAGMA secure_delete), so
// an expunged message leaves no readable bytes in the database's free pages. With Checkpoint, which
// empties the write-ahead log, a node that must not keep a message (a gateway handing relay messages to
// its relay) can forget it on disk. It costs a write per freed page.
func WithSecureDelete() Option { return func(o *options) { o.secureDelete = true } }

// WithChangeLimit sets how many changes a listener may have pending before it overflows (default
// 10000).
func WithChangeLimit(n int) Option { return func(o *options) { o.changeLimit = n } }

// Store is the mailbox store of one account. It is safe for concurrent use.
type Store struct {
	path  string
	wdb   *sql.DB // one connection, used only under wlock
	rdb   *sql.DB // read-only connections
	wlock chan struct{}
	qmu   sync.Mutex  // guards queue
	queue []*writeReq // Updates waiting for a group, in arrival order
	// commits counts the write transactions committed, writes the Updates they carried.
	commits, writes atomic.Int64
	wst             *stmtCache // of wdb
	rst             *stmtCache // of rdb
	opts            options
	bus             bus

	closeOnce sync.Once
	closed    chan struct{}
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// schema is the store's embedded migrations (package sqlitedb applies them).
var schema = sqlitedb.Schema{FS: migrationFiles, Dir: "migrations", TooNew: ErrSchemaTooNew}

// SchemaVersion is the schema version this program writes (the number of its last migration).
func SchemaVersion() int { return schema.Version() }

// Open opens (creating if needed) the store at path: WAL, synchronous=FULL, busy timeout, foreign
// keys; it applies the embedded migrations that the file lacks (all in one transaction) and creates
// the role mailboxes that do not exist yet.
func Open(path string, opts ...Option) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("store: invalid database path %q", path)
	}
	o := options{
		clock:       time.Now,
		uidValidity: func() uint32 { return uint32(time.Now().Unix()) },
		changeLimit: defaultChangeLimit,
	}
	for _, opt := range opts {
		opt(&o)
	}
	common := []string{fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis), "foreign_keys(1)", "synchronous(FULL)"}
	wpragmas := append(slices.Clone(common), "journal_mode(WAL)")
	if o.secureDelete {
		wpragmas = append(wpragmas, "secure_delete(1)")
	}
	wdb, err := sqlitedb.Open(path, sqlitedb.Options{Pragmas: wpragmas, Immediate: true, MaxConns: 1, Mode: 0o600})
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}

	s := &Store{
		path:   path,
		wdb:    wdb,
		wlock:  make(chan struct{}, 1),
		opts:   o,
		closed: make(chan struct{}),
	}
	s.bus.limit = o.changeLimit
	if err := s.migrate(context.Background()); err != nil {
		wdb.Close()
		return nil, err
	}
	rdb, err := sqlitedb.Open(path, sqlitedb.Options{Pragmas: append(common, "query_only(1)"), MaxConns: readConns})
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	s.rdb = rdb
	s.wst, s.rst = newStmtCache(wdb), newStmtCache(rdb)
	if err := s.Update(context.Background(), func(tx *Tx) error {
		if err := tx.ensureRoleMailboxes(); err != nil {
			return err
		}
		return tx.adoptRcptAddrs()
	}); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	defer conn.Close()
	if _, err := sqlitedb.Migrate(ctx, conn, schema); err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	return nil
}

// Close waits for a running write to finish and closes the database. Listeners are not notified;
// their owners should be gone first.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)       // queued Updates give up; a running one finishes
		s.wlock <- struct{}{} // no write after this; never released
		if s.rst != nil {
			s.rst.close()
			s.wst.close()
		}
		if s.rdb != nil {
			err = s.rdb.Close()
		}
		if e := s.wdb.Close(); err == nil {
			err = e
		}
	})
	return err
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

func (s *Store) now() time.Time { return s.opts.clock() }

func (s *Store) lock(ctx context.Context) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	select {
	case s.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return ErrClosed
	}
	select {
	case <-s.closed: // Close raced us for the lock and lost; do not write after it.
		<-s.wlock
		return ErrClosed
	default:
		return nil
	}
}

func (s *Store) unlock() { <-s.wlock }

// Checkpoint copies the write-ahead log into the database and truncates it (PRAGMA
// wal_checkpoint(TRUNCATE)), under the writer lock: what was deleted is then gone from the log too
// (with WithSecureDelete, from the whole file). A reader holding an old snapshot can make it
// incomplete; it then reports an error and the next Checkpoint finishes the job.
func (s *Store) Checkpoint(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	var busy, logFrames, done int
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("store: checkpoint: readers kept %d of %d log frames", logFrames-done, logFrames)
	}
	return nil
}

// Tx is a write transaction, passed to the function given to Store.Update. Its methods are the
// store's write operations; they take effect, and their changes are broadcast, only if the function
// returns nil. A Tx must not be used after the function returns, nor from another goroutine, and the
// function must not call the Store's own write methods (they would wait for the lock it holds).
type Tx struct {
	s       *Store
	ctx     context.Context
	tx      cachedTx
	modseq  uint64
	changes []Change
	bodies  map[int64]struct{} // bodies that may have lost their last reference
}

// Update runs fn in one write transaction under the writer lock. If fn returns nil the transaction
// commits (durably) and the changes it made are broadcast, in order, before Update returns; otherwise
// it rolls back and fn's error is returned.
//
// Group commit: Updates that arrive while another one holds the writer lock queue up, and the next
// caller to take the lock runs every queued fn (at most maxGroup), in arrival order, each in a
// SAVEPOINT of one SQLite transaction, and commits once: one fsync makes the whole group durable.
// A fn that fails rolls back to its savepoint and fails alone; a commit that fails fails every fn
// of the group (none of their work is on disk). ctx is checked before fn runs; once it runs, fn's
// statements are not interrupted by ctx (an interrupted statement would roll back the whole group's
// transaction, SQLite's rule for sqlite3_interrupt).
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	s.qmu.Lock()
	s.queue = append(s.queue, req)
	s.qmu.Unlock()
	for {
		select {
		case err := <-req.done:
			return result(err)
		default:
		}
		select {
		case err := <-req.done:
			return result(err)
		case s.wlock <- struct{}{}:
			select {
			case <-s.closed: // Close raced us for the lock and lost; do not write after it.
				<-s.wlock
				s.dequeue(req)
				return ErrClosed
			default:
			}
			func() {
				defer func() { <-s.wlock }()
				s.runGroup()
			}()
		case <-ctx.Done():
			if s.dequeue(req) {
				return ctx.Err()
			}
			return result(<-req.done) // a group took it and is running it
		case <-s.closed:
			if s.dequeue(req) {
				return ErrClosed
			}
			return result(<-req.done)
		}
	}
}

// fnPanic carries a panic of an Update's fn from the goroutine that ran it (a group's) to the
// Update's caller, which panics again with the same value: the store stays usable, and the panic
// surfaces where it did before group commit.
type fnPanic struct{ v any }

func (p fnPanic) Error() string { return fmt.Sprintf("store: update panicked: %v", p.v) }

// result is an Update's outcome, re-raising the fn's panic in the caller's goroutine.
func result(err error) error {
	if p, ok := err.(fnPanic); ok {
		panic(p.v)
	}
	return err
}

// call runs r's fn and the body bookkeeping of its transaction, turning a panic into fnPanic.
func (r *writeReq) call() (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fnPanic{v}
		}
	}()
	if err := r.fn(r.tx); err != nil {
		return err
	}
	return r.tx.collectBodies()
}

// maxGroup bounds how many queued Updates one transaction runs.
const maxGroup = 64

// writeReq is one Update waiting for a group to run it.
type writeReq struct {
	ctx  context.Context
	fn   func(tx *Tx) error
	done chan error // buffered; receives fn's outcome once
	tx   *Tx
}

// dequeue removes req from the queue, reporting whether it was still there (not taken by a group).
func (s *Store) dequeue(req *writeReq) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	i := slices.Index(s.queue, req)
	if i < 0 {
		return false
	}
	s.queue = slices.Delete(s.queue, i, i+1)
	return true
}

// runGroup runs the queued Updates (at most maxGroup) in one transaction; the caller holds wlock.
// Every request taken from the queue gets exactly one outcome on its done channel.
func (s *Store) runGroup() {
	s.qmu.Lock()
	n := min(len(s.queue), maxGroup)
	group := slices.Clone(s.queue[:n])
	s.queue = slices.Delete(s.queue, 0, n)
	s.qmu.Unlock()
	if len(group) == 0 {
		return
	}
	defer s.wst.prepare() // under the writer lock, the transaction over: the connection is free
	bg := context.Background()
	stx, err := s.wdb.BeginTx(bg, nil)
	if err != nil {
		for _, r := range group {
			r.done <- fmt.Errorf("store: begin: %w", err)
		}
		return
	}
	single := len(group) == 1
	var ok []*writeReq // ran and want their work committed
	// abort ends the transaction after a failure that takes the whole group's work with it: the fns
	// that ran get err, those not run yet get it too.
	abort := func(from int, err error) {
		stx.Rollback()
		for _, r := range ok {
			r.done <- err
		}
		for _, r := range group[from:] {
			r.done <- err
		}
	}
	for i, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		if !single {
			if _, err := stx.ExecContext(bg, "SAVEPOINT upd"); err != nil {
				abort(i, fmt.Errorf("store: savepoint: %w", err))
				return
			}
		}
		r.tx = &Tx{s: s, ctx: context.WithoutCancel(r.ctx), tx: cachedTx{stx, s.wst}}
		err := r.call()
		if err != nil && single {
			stx.Rollback()
			r.done <- err
			return
		}
		if err != nil {
			// Undo this fn's work only. SQLite rolls a transaction back whole on some errors (a
			// full disk, an I/O error); then the savepoint is gone and so is the group's work.
			if _, rerr := stx.ExecContext(bg, "ROLLBACK TO upd"); rerr != nil {
				r.done <- err
				abort(i+1, fmt.Errorf("store: transaction lost after an error of another write: %w", rerr))
				return
			}
			if _, rerr := stx.ExecContext(bg, "RELEASE upd"); rerr != nil {
				r.done <- err
				abort(i+1, fmt.Errorf("store: release: %w", rerr))
				return
			}
			r.done <- err
			continue
		}
		if !single {
			if _, err := stx.ExecContext(bg, "RELEASE upd"); err != nil {
				abort(i, fmt.Errorf("store: release: %w", err))
				return
			}
		}
		ok = append(ok, r)
	}
	if len(ok) == 0 {
		stx.Rollback()
		return
	}
	if err := stx.Commit(); err != nil {
		for _, r := range ok {
			r.done <- fmt.Errorf("store: commit: %w", err)
		}
		return
	}
	s.commits.Add(1)
	s.writes.Add(int64(len(ok)))
	for _, r := range ok {
		s.bus.broadcast(r.tx.changes)
		r.done <- nil
	}
}

// WriteStats reports how many write transactions the store has committed and how many Updates they
// carried (more Updates than commits: group commit shared fsyncs).
func (s *Store) WriteStats() (commits, writes int64) { return s.commits.Load(), s.writes.Load() }

// ModSeq returns the modseq this transaction has taken, 0 if it has changed nothing yet.
func (tx *Tx) ModSeq() uint64 { return tx.modseq }

// nextModSeq returns the transaction's modseq, taking a new one on first use.
func (tx *Tx) nextModSeq() (uint64, error) {
	if tx.modseq != 0 {
		return tx.modseq, nil
	}
	var m uint64
	err := tx.tx.QueryRowContext(tx.ctx,
		`UPDATE account SET last_modseq = last_modseq + 1 WHERE id = 1 RETURNING last_modseq`).Scan(&m)
	if err != nil {
		return 0, fmt.Errorf("store: modseq: %w", err)
	}
	tx.modseq = m
	return m, nil
}

func (tx *Tx) emit(c Change) { tx.changes = append(tx.changes, c) }

func (tx *Tx) exec(q string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(tx.ctx, q, args...)
}

func (tx *Tx) queryRow(q string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(tx.ctx, q, args...)
}

func (tx *Tx) query(q string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(tx.ctx, q, args...)
}

// nextUIDValidity hands out a UIDVALIDITY for a new mailbox, strictly above every earlier one.
func (tx *Tx) nextUIDValidity() (uint32, error) {
	var last int64
	if err := tx.queryRow(`SELECT last_uidvalidity FROM account WHERE id = 1`).Scan(&last); err != nil {
		return 0, fmt.Errorf("store: uidvalidity: %w", err)
	}
	v := int64(tx.s.opts.uidValidity())
	if v <= last {
		v = last + 1
	}
	if v > math.MaxUint32 {
		return 0, errors.New("store: UIDVALIDITY values exhausted")
	}
	if _, err := tx.exec(`UPDATE account SET last_uidvalidity = ? WHERE id = 1`, v); err != nil {
		return 0, fmt.Errorf("store: uidvalidity: %w", err)
	}
	return uint32(v), nil
}

// read runs fn in one read-only transaction (one consistent snapshot).
func (s *Store) read(ctx context.Context, fn func(tx cachedTx) error) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store: begin read: %w", err)
	}
	defer func() {
		tx.Rollback()
		s.rst.prepare() // the transaction over: its connection is free for preparing
	}()
	return fn(cachedTx{tx, s.rst})
}

// AccountState is the account-wide sync state.
type AccountState struct {
	// LastModSeq is the modseq of the last write transaction that changed something.
	LastModSeq uint64
	// HighestDeletedModSeq is the highest modseq of purged tombstones: expunges at or below it may be
	// missing from Vanished.
	HighestDeletedModSeq uint64
}

// Account returns the account-wide sync state.
func (s *Store) Account(ctx context.Context) (AccountState, error) {
	var a AccountState
	err := s.read(ctx, func(tx cachedTx) error {
		return tx.QueryRowContext(ctx, `SELECT last_modseq, highest_deleted_modseq FROM account WHERE id = 1`).
			Scan(&a.LastModSeq, &a.HighestDeletedModSeq)
	})
	return a, err
}

// collectBodies deletes the bodies this transaction may have orphaned.
func (tx *Tx) collectBodies() error {
	for id := range tx.bodies {
		_, err := tx.exec(`DELETE FROM body WHERE id = ?
			AND NOT EXISTS (SELECT 1 FROM message WHERE body_id = ?)
			AND NOT EXISTS (SELECT 1 FROM outbox WHERE body_id = ?)`, id, id, id)
		if err != nil {
			return fmt.Errorf("store: collect body: %w", err)
		}
	}
	return nil
}

func (tx *Tx) maybeOrphaned(bodyID int64) {
	if tx.bodies == nil {
		tx.bodies = map[int64]struct{}{}
	}
	tx.bodies[bodyID] = struct{}{}
}

// clampU64 converts a caller's uint64 (modseq) to an SQL integer; SQLite integers are signed 64-bit.
func clampU64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
