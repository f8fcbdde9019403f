package inbox

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/sqlitedb"
	_ "modernc.org/sqlite" // the "sqlite" driver (pure Go)
)

// pieceStore keeps the pieces (manifest and chunks, protocol.md §10.1) of chunked messages until the
// message is complete and filed. It is one small SQLite file owned by this package (by default next
// to the mail store: mail.db → mail.chunks.db), so that the account's store needs no table for
// half-received messages. Schema (migrations/, applied by package sqlitedb; until it, the version was
// PRAGMA user_version, which sqlitedb adopts):
//
//	piece (sender BLOB, msgid BLOB, idx INTEGER,  -- idx −1 is the manifest
//	       count INTEGER,                          -- the chunk count the piece declares
//	       content BLOB,                           -- the envelope content as opened
//	       size INTEGER,                           -- len(content)
//	       replay_key BLOB,                        -- the envelope's enc (§6)
//	       sender_addr TEXT,                       -- the verified sender ("…@tangle"), for filing
//	       rcpt BLOB,                              -- the Ed25519 key of our identity that opened it
//	       expires INTEGER,                        -- Unix ms: the latest expiry of a block carrying it
//	       PRIMARY KEY (sender, msgid, idx))
//
// The file is written with synchronous=NORMAL: a power loss may lose the last pieces, which is
// harmless, because nothing is acknowledged before the message is filed in the mail store (which is
// fully synchronous) and the sender publishes every piece again when no receipt comes.
type pieceStore struct {
	db *sql.DB
	mu sync.Mutex // one writer at a time: insert-then-count must see every earlier insert

	maxMessages int   // incomplete messages kept
	maxBytes    int64 // content bytes kept
}

type piece struct {
	sender     []byte // Ed25519 public key of the sender
	msgid      []byte
	idx        int // −1: manifest
	count      int
	content    []byte
	replayKey  [32]byte
	senderAddr string
	rcpt       []byte
	expires    time.Time
}

var errPiecesFull = errors.New("inbox: too many incomplete chunked messages")

// pieceSchema is the chunk file's migrations, applied by package sqlitedb.
//
//go:embed migrations/*.sql
var pieceMigrations embed.FS

var pieceSchema = sqlitedb.Schema{FS: pieceMigrations, Dir: "migrations"}

func openPieces(path string, maxMessages int, maxBytes int64) (*pieceStore, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("inbox: invalid chunk database path %q", path)
	}
	db, err := sqlitedb.OpenMigrated(path, sqlitedb.Options{MaxConns: 1, Immediate: true, Mode: 0o600,
		Pragmas: []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)"}}, pieceSchema)
	if err != nil {
		return nil, fmt.Errorf("inbox: chunk database %s: %w", path, err)
	}
	return &pieceStore{db: db, maxMessages: maxMessages, maxBytes: maxBytes}, nil
}

func (ps *pieceStore) Close() error { return ps.db.Close() }

// add stores p (a repeated piece keeps its first content and the later expiry) and, if the message is
// now complete — its manifest and `count` chunks that all declare that count — returns all its pieces,
// manifest first, then chunks by index. A new message beyond the limits is refused with errPiecesFull.
func (ps *pieceStore) add(ctx context.Context, p piece) ([]piece, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	tx, err := ps.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var known int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM piece WHERE sender = ? AND msgid = ?`,
		p.sender, p.msgid).Scan(&known); err != nil {
		return nil, err
	}
	var msgs int
	var size int64
	if err := tx.QueryRowContext(ctx, `SELECT count(DISTINCT sender || msgid), coalesce(sum(size), 0) FROM piece`).
		Scan(&msgs, &size); err != nil {
		return nil, err
	}
	if (known == 0 && msgs >= ps.maxMessages) || size+int64(len(p.content)) > ps.maxBytes {
		return nil, errPiecesFull
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO piece (sender, msgid, idx, count, content, size, replay_key,
		sender_addr, rcpt, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (sender, msgid, idx) DO UPDATE SET expires = max(expires, excluded.expires)`,
		p.sender, p.msgid, p.idx, p.count, p.content, len(p.content), p.replayKey[:], p.senderAddr, p.rcpt,
		p.expires.UnixMilli())
	if err != nil {
		return nil, err
	}
	var count, chunks int
	err = tx.QueryRowContext(ctx, `SELECT m.count, (SELECT count(*) FROM piece c WHERE c.sender = m.sender
		AND c.msgid = m.msgid AND c.idx >= 0 AND c.count = m.count)
		FROM piece m WHERE m.sender = ? AND m.msgid = ? AND m.idx = -1`, p.sender, p.msgid).Scan(&count, &chunks)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && chunks < count) {
		return nil, tx.Commit()
	}
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT idx, count, content, replay_key, sender_addr, rcpt, expires
		FROM piece WHERE sender = ? AND msgid = ? ORDER BY idx`, p.sender, p.msgid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []piece
	for rows.Next() {
		q := piece{sender: p.sender, msgid: p.msgid}
		var key []byte
		var exp int64
		if err := rows.Scan(&q.idx, &q.count, &q.content, &key, &q.senderAddr, &q.rcpt, &exp); err != nil {
			return nil, err
		}
		q.replayKey = [32]byte(key)
		q.expires = time.UnixMilli(exp)
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, tx.Commit()
}

// remove deletes a message's pieces (filed, or found inconsistent).
func (ps *pieceStore) remove(ctx context.Context, sender, msgid []byte) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	_, err := ps.db.ExecContext(ctx, `DELETE FROM piece WHERE sender = ? AND msgid = ?`, sender, msgid)
	return err
}

// prune deletes the pieces of messages that can no longer complete — every piece's blocks have expired
// — and of messages already filed (their manifest's replay key is claimed in the mail store: a crash
// between filing and remove leaves them behind). It returns how many pieces it deleted.
func (ps *pieceStore) prune(ctx context.Context, now time.Time, filed func([32]byte) (bool, error)) (int64, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	res, err := ps.db.ExecContext(ctx, `DELETE FROM piece WHERE (sender, msgid) IN (
		SELECT sender, msgid FROM piece GROUP BY sender, msgid HAVING max(expires) < ?)`, now.UnixMilli())
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	rows, err := ps.db.QueryContext(ctx, `SELECT sender, msgid, replay_key FROM piece WHERE idx = -1`)
	if err != nil {
		return n, err
	}
	type msg struct{ sender, msgid []byte }
	var done []msg
	for rows.Next() {
		var m msg
		var key []byte
		if err := rows.Scan(&m.sender, &m.msgid, &key); err != nil {
			rows.Close()
			return n, err
		}
		if ok, err := filed([32]byte(key)); err == nil && ok {
			done = append(done, m)
		}
	}
	rows.Close()
	for _, m := range done {
		res, err := ps.db.ExecContext(ctx, `DELETE FROM piece WHERE sender = ? AND msgid = ?`, m.sender, m.msgid)
		if err != nil {
			return n, err
		}
		k, _ := res.RowsAffected()
		n += k
	}
	return n, nil
}

// stats returns the number of incomplete messages and the bytes held.
func (ps *pieceStore) stats(ctx context.Context) (msgs int, size int64, err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	err = ps.db.QueryRowContext(ctx, `SELECT count(DISTINCT sender || msgid), coalesce(sum(size), 0) FROM piece`).
		Scan(&msgs, &size)
	return msgs, size, err
}
