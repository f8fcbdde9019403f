package inbox

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// A chunk file written before package sqlitedb (version in PRAGMA user_version, no schema_version)
// still opens, keeps its pieces, and is recorded at version 1 without running the schema again.
func TestOpenPiecesOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.chunks.db")
	old, err := sql.Open("sqlite", path+"?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	// The schema exactly as the code before sqlitedb created it.
	if _, err := old.Exec(`CREATE TABLE IF NOT EXISTS piece (
	sender BLOB NOT NULL, msgid BLOB NOT NULL, idx INTEGER NOT NULL, count INTEGER NOT NULL,
	content BLOB NOT NULL, size INTEGER NOT NULL, replay_key BLOB NOT NULL, sender_addr TEXT NOT NULL,
	rcpt BLOB NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (sender, msgid, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS piece_expires ON piece (expires);
PRAGMA user_version = 1;
INSERT INTO piece VALUES (x'01', x'02', -1, 2, x'0303', 2, x'04', 'a@tangle', x'05', 0);`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	ps, err := openPieces(path, 10, 1<<20)
	if err != nil {
		t.Fatalf("open an old chunk file: %v", err)
	}
	defer ps.Close()
	msgs, size, err := ps.stats(context.Background())
	if err != nil || msgs != 1 || size != 2 {
		t.Fatalf("old file: %d messages, %d bytes, %v; want its piece kept", msgs, size, err)
	}
	var n, v, uv int
	if err := ps.db.QueryRow(`SELECT count(*), max(version) FROM schema_version`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	ps.db.QueryRow(`PRAGMA user_version`).Scan(&uv)
	if n != 1 || v != 1 || uv != 1 {
		t.Fatalf("schema_version %d rows, max %d, user_version %d; want 1, 1, 1", n, v, uv)
	}
}

// A new chunk file gets both kinds of bookkeeping, so an older program opens it too.
func TestOpenPiecesNewFile(t *testing.T) {
	ps, err := openPieces(filepath.Join(t.TempDir(), "c.db"), 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	var v, uv int
	ps.db.QueryRow(`SELECT max(version) FROM schema_version`).Scan(&v)
	ps.db.QueryRow(`PRAGMA user_version`).Scan(&uv)
	if v != 1 || uv != 1 {
		t.Fatalf("schema version %d, user_version %d; want 1 and 1", v, uv)
	}
}
