// Package sqlitedb owns the one way tanglemail opens a SQLite database (modernc.org/sqlite, pure Go)
// and brings its schema up to date. The mailbox store, the block store (tangle/dag), the inbox's
// chunk file, the storage provider, the light client's database, the payment ledger, the gateway's
// claims and relay queue and the OpenPGP peer keys (e2e) use it; each keeps its own pragmas, which it
// passes to Open (or OpenMigrated, which opens and migrates in one step).
//
// # Opening
//
// Open builds a "file:" URI with one _pragma parameter per pragma, so that every connection of the
// pool runs them when it is made (busy_timeout, journal_mode, synchronous, foreign_keys, … are
// per-connection settings in SQLite). A writer asks for BEGIN IMMEDIATE transactions (Immediate), so
// that a transaction that will write takes the write lock at its start and never fails to upgrade.
// With Options.Mode it owns the files' permissions: the database and its -wal and -shm files get that
// mode, so no caller sets them itself.
//
// # Migrations
//
// A schema is a list of numbered migrations embedded in the program: files NNNN_what.sql in one
// directory of an fs.FS, numbered 1, 2, 3, … without gaps. Migrate applies the ones a file lacks in
// one BEGIN IMMEDIATE transaction, each recorded in the table
//
//	schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) -- Unix ms
//
// so that either all pending migrations are applied or none. A file whose version is newer than the
// program's is refused (ErrSchemaTooNew, or the caller's own error) and left untouched.
//
// Older bookkeeping is adopted transparently, in the same transaction:
//   - a schema_version table whose time column is called "applied" (the mailbox store's until this
//     package) has it renamed to applied_at;
//   - a file without a schema_version table but with PRAGMA user_version n > 0 (the inbox's chunk file
//     until this package) is taken to be at version n: rows 1..n are recorded, nothing is re-run.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, CGO_ENABLED=0)
)

// ErrSchemaTooNew is returned by Migrate when the file's schema is newer than the program's, unless the
// caller names its own error in Schema.TooNew.
var ErrSchemaTooNew = errors.New("sqlitedb: database schema is newer than this program")

// Options say how to open a database.
type Options struct {
	// Pragmas run on every new connection, as "name(value)": "busy_timeout(10000)",
	// "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "query_only(1)", …
	Pragmas []string
	// Immediate makes every transaction BEGIN IMMEDIATE (for the writer's pool).
	Immediate bool
	// MaxConns bounds the pool's open (and idle) connections; 0 leaves database/sql's defaults. A
	// writer uses 1: its connections then live as long as the pool.
	MaxConns int
	// Mode, if not zero, is the permission bits of the database file and of its -wal and -shm files:
	// Open (and OpenMigrated) creates the database with them and sets them on the three files that
	// exist (0o600 for a file holding keys, payments or mail). SQLite creates a missing -wal or -shm
	// with the database file's bits, so those get them too.
	Mode os.FileMode
}

// DSN returns the connection string for path and o.
func DSN(path string, o Options) string {
	q := url.Values{}
	for _, p := range o.Pragmas {
		q.Add("_pragma", p)
	}
	if o.Immediate {
		q.Add("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Opaque: url.PathEscape(path), RawQuery: q.Encode()}
	return u.String()
}

// Open opens (creating if needed) the database at path, with o.Mode if that is set. Like sql.Open it
// does not connect: the first use does, and reports a file that is not a database.
func Open(path string, o Options) (*sql.DB, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlitedb: invalid database path %q", path)
	}
	if o.Mode != 0 {
		if err := setMode(path, o.Mode); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open("sqlite", DSN(path, o))
	if err != nil {
		return nil, err
	}
	if o.MaxConns > 0 {
		db.SetMaxOpenConns(o.MaxConns)
		db.SetMaxIdleConns(o.MaxConns)
		if o.MaxConns == 1 {
			db.SetConnMaxLifetime(0)
			db.SetConnMaxIdleTime(0)
		}
	}
	return db, nil
}

// setMode creates the database file at path with mode if it does not exist, and sets mode on it and on
// its -wal and -shm files if they exist (say, left from a file opened before it had the mode). It runs
// before SQLite opens the file, so that SQLite gives the -wal or -shm it creates the database's mode.
func setMode(path string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, mode)
	if err != nil {
		return err
	}
	f.Close()
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Chmod(path+suffix, mode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// OpenMigrated opens the database at path like Open (with o.Mode if that is set) and brings it up to
// date with s (Migrate) on one connection. On error nothing stays open.
func OpenMigrated(path string, o Options, s Schema) (*sql.DB, error) {
	db, err := Open(path, o)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err == nil {
		_, err = Migrate(ctx, conn, s)
		conn.Close()
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Migration is one numbered step of a schema.
type Migration struct {
	Version int
	Name    string // the file name, NNNN_what.sql
	SQL     string
}

// Schema is a database's embedded migrations.
type Schema struct {
	FS  fs.FS  // holds the migrations
	Dir string // the directory in FS holding NNNN_what.sql
	// TooNew, when set, is the error Migrate wraps for a file newer than the program (instead of
	// ErrSchemaTooNew).
	TooNew error
}

// Migrations returns the schema's migrations by version. Versions must be 1, 2, 3, … without gaps; a
// malformed set is a programming error that the callers' tests catch.
func (s Schema) Migrations() ([]Migration, error) {
	names, err := fs.Glob(s.FS, path.Join(s.Dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("sqlitedb: migration %s: name must be NNNN_what.sql", base)
		}
		b, err := fs.ReadFile(s.FS, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{v, base, string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("sqlitedb: migrations must be numbered 1, 2, 3, …; found %s", m.Name)
		}
	}
	return ms, nil
}

// Version is the schema version the program writes: the number of its last migration. It panics on a
// malformed set of embedded migrations (a programming error).
func (s Schema) Version() int {
	ms, err := s.Migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}

// Migrate brings the database on conn up to date in one BEGIN IMMEDIATE transaction (see the package
// notes) and returns the version it was at.
func Migrate(ctx context.Context, conn *sql.Conn, s Schema) (from int, err error) {
	ms, err := s.Migrations()
	if err != nil {
		return 0, err
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if err := adoptBookkeeping(ctx, conn); err != nil {
		return 0, fmt.Errorf("sqlitedb: schema_version: %w", err)
	}
	var cur int
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&cur); err != nil {
		return 0, fmt.Errorf("sqlitedb: schema_version: %w", err)
	}
	if cur > len(ms) {
		tooNew := s.TooNew
		if tooNew == nil {
			tooNew = ErrSchemaTooNew
		}
		return cur, fmt.Errorf("%w: file has version %d, program knows %d", tooNew, cur, len(ms))
	}
	for _, m := range ms[cur:] {
		if _, err := conn.ExecContext(ctx, m.SQL); err != nil {
			return cur, fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMilli()); err != nil {
			return cur, fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return cur, err
	}
	return cur, nil
}

// adoptBookkeeping creates schema_version, or brings an older form of it (or a user_version) to the
// current one; see the package notes. It runs inside Migrate's transaction.
func adoptBookkeeping(ctx context.Context, conn *sql.Conn) error {
	var tables int
	if err := conn.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).Scan(&tables); err != nil {
		return err
	}
	if tables == 1 {
		var legacy int
		if err := conn.QueryRowContext(ctx,
			`SELECT count(*) FROM pragma_table_info('schema_version') WHERE name = 'applied'`).Scan(&legacy); err != nil {
			return err
		}
		if legacy == 1 {
			_, err := conn.ExecContext(ctx, `ALTER TABLE schema_version RENAME COLUMN applied TO applied_at`)
			return err
		}
		return nil
	}
	var userVersion int
	if err := conn.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&userVersion); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE schema_version (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL -- Unix ms
	)`); err != nil {
		return err
	}
	for v := 1; v <= userVersion; v++ {
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
			v, fmt.Sprintf("user_version %d", v), time.Now().UnixMilli()); err != nil {
			return err
		}
	}
	return nil
}
