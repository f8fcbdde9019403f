package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

var testSchema = Schema{Dir: "m", FS: fstest.MapFS{
	"m/0001_init.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
	"m/0002_more.sql": {Data: []byte(`CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (7);`)},
}}

func open(t *testing.T, path string) (*sql.DB, *sql.Conn) {
	t.Helper()
	db, err := Open(path, Options{Pragmas: []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"},
		Immediate: true, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return db, conn
}

func versions(t *testing.T, conn *sql.Conn) (n, max int) {
	t.Helper()
	if err := conn.QueryRowContext(context.Background(),
		`SELECT count(*), coalesce(max(version), 0) FROM schema_version`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	return n, max
}

func TestOpenPragmas(t *testing.T) {
	_, conn := open(t, filepath.Join(t.TempDir(), "x?y#z.db")) // odd characters are escaped
	var mode string
	var sync, busy int
	ctx := context.Background()
	if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	conn.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync)
	conn.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy)
	if mode != "wal" || sync != 2 || busy != 10000 {
		t.Fatalf("journal_mode %s, synchronous %d, busy_timeout %d; want wal, 2 (FULL), 10000", mode, sync, busy)
	}
}

// With Mode, the database and its -wal and -shm files get the mode: a new database's, and those of one
// whose files were made before with other bits (0644, as SQLite makes them under the usual umask).
func TestOpenMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	wal := []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"}
	o := Options{Pragmas: wal, Immediate: true, MaxConns: 1, Mode: 0o600}
	// check runs while a connection is open, so that -wal and -shm exist (the last close removes them).
	check := func(t *testing.T, path string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want -rw-------", filepath.Base(p), fi.Mode().Perm())
			}
		}
	}
	t.Run("new", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "new.db")
		db, err := OpenMigrated(path, o, testSchema) // the migration's connection stays in the pool
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		check(t, path)
	})
	t.Run("existing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "old.db")
		old, err := Open(path, Options{Pragmas: wal, MaxConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()
		if _, err := old.Exec(`CREATE TABLE t (x INTEGER)`); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		db, err := OpenMigrated(path, o, testSchema)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		check(t, path)
	})
}

func TestMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	_, conn := open(t, path)
	ctx := context.Background()
	from, err := Migrate(ctx, conn, testSchema)
	if err != nil || from != 0 {
		t.Fatalf("Migrate: from %d, %v", from, err)
	}
	if n, max := versions(t, conn); n != 2 || max != 2 || testSchema.Version() != 2 {
		t.Fatalf("schema_version: %d rows, max %d", n, max)
	}
	// Again: nothing to do, nothing re-run.
	if from, err := Migrate(ctx, conn, testSchema); err != nil || from != 2 {
		t.Fatalf("second Migrate: from %d, %v", from, err)
	}
	var rows int
	conn.QueryRowContext(ctx, `SELECT count(*) FROM a`).Scan(&rows)
	if rows != 1 {
		t.Fatalf("table a has %d rows: a migration ran twice", rows)
	}
	// A newer file is refused with the caller's error, untouched.
	if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version VALUES (3, 'future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	errMine := errors.New("mine: too new")
	s := testSchema
	s.TooNew = errMine
	if _, err := Migrate(ctx, conn, s); !errors.Is(err, errMine) {
		t.Fatalf("newer file: %v, want the caller's error", err)
	}
	if _, err := Migrate(ctx, conn, testSchema); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("newer file: %v, want ErrSchemaTooNew", err)
	}
	if n, _ := versions(t, conn); n != 3 {
		t.Fatalf("refused file changed: %d versions", n)
	}
}

// A failing migration leaves nothing behind: the earlier ones of the same run are rolled back too.
func TestMigrateAllOrNothing(t *testing.T) {
	_, conn := open(t, filepath.Join(t.TempDir(), "db"))
	bad := Schema{Dir: "m", FS: fstest.MapFS{
		"m/0001_init.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
		"m/0002_bad.sql":  {Data: []byte(`CREATE TABLE a (x INTEGER);`)}, // exists already
	}}
	ctx := context.Background()
	if _, err := Migrate(ctx, conn, bad); err == nil || !strings.Contains(err.Error(), "0002_bad.sql") {
		t.Fatalf("Migrate of a bad set: %v", err)
	}
	var n int
	conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name IN ('a', 'schema_version')`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d tables left by a failed migration", n)
	}
	if _, err := Migrate(ctx, conn, testSchema); err != nil {
		t.Fatalf("Migrate after a failed one: %v", err)
	}
}

func TestMigrationNames(t *testing.T) {
	for _, fsys := range []fstest.MapFS{
		{"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		{"m/one.sql": {}},
		{"m/0002_b.sql": {}},
	} {
		if _, err := (Schema{FS: fsys, Dir: "m"}).Migrations(); err == nil {
			t.Errorf("migrations %v accepted", fsys)
		}
	}
}

// The mailbox store's bookkeeping before this package: a schema_version whose time column is
// "applied". It is renamed, and the recorded versions are kept.
func TestAdoptAppliedColumn(t *testing.T) {
	_, conn := open(t, filepath.Join(t.TempDir(), "db"))
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)`,
		`CREATE TABLE a (x INTEGER)`,
		`INSERT INTO schema_version (version, name, applied) VALUES (1, '0001_init.sql', 5)`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if from, err := Migrate(ctx, conn, testSchema); err != nil || from != 1 {
		t.Fatalf("Migrate of an old-style file: from %d, %v", from, err)
	}
	var at int64
	if err := conn.QueryRowContext(ctx, `SELECT applied_at FROM schema_version WHERE version = 1`).Scan(&at); err != nil || at != 5 {
		t.Fatalf("version 1 applied_at %d, %v; want the old record", at, err)
	}
	if n, max := versions(t, conn); n != 2 || max != 2 {
		t.Fatalf("schema_version: %d rows, max %d", n, max)
	}
}

// The chunk file's bookkeeping before this package: PRAGMA user_version, no schema_version.
func TestAdoptUserVersion(t *testing.T) {
	_, conn := open(t, filepath.Join(t.TempDir(), "db"))
	ctx := context.Background()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1); PRAGMA user_version = 1;`); err != nil {
		t.Fatal(err)
	}
	if from, err := Migrate(ctx, conn, testSchema); err != nil || from != 1 {
		t.Fatalf("Migrate of a user_version file: from %d, %v", from, err)
	}
	var rows int
	conn.QueryRowContext(ctx, `SELECT count(*) FROM a`).Scan(&rows)
	if rows != 2 { // the old row and migration 2's
		t.Fatalf("table a has %d rows, want 2", rows)
	}
}
