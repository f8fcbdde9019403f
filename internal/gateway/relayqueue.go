package gateway

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/sqlitedb"
)

//go:embed relaymigrations/*.sql
var relayMigrations embed.FS

var relaySchema = sqlitedb.Schema{FS: relayMigrations, Dir: "relaymigrations"}

// RelayFile is the outbound queue's file name in the gateway's directory. It holds the plaintext of
// queued outbound mail until delivery (docs/threat-model.md).
const RelayFile = "relay.db"

// relayQueue is the durable outbound queue: SQLite, one writer connection, synchronous=FULL,
// secure_delete (a delivered message's pages are zeroed, not just unlinked).
type relayQueue struct {
	db *sql.DB
}

type relayJob struct {
	msgID    int64
	rcpt     string
	attempts int
	sender   identity.Address
	mailFrom string
	body     []byte
	created  time.Time
}

func openRelayQueue(path string) (*relayQueue, error) {
	db, err := sqlitedb.OpenMigrated(path, sqlitedb.Options{MaxConns: 1, Immediate: true, Mode: 0o600,
		Pragmas: []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "secure_delete(1)"}}, relaySchema)
	if err != nil {
		return nil, fmt.Errorf("gateway: relay queue %s: %w", path, err)
	}
	return &relayQueue{db: db}, nil
}

// close checkpoints the WAL into the database and truncates it (so no old frame of a deleted message
// outlives the WAL's reuse) and closes the database.
func (q *relayQueue) close() error {
	_, _ = q.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return q.db.Close()
}

// relayKey identifies a relay request: the same request handed over twice is queued once.
func relayKey(sender identity.Address, raw []byte) []byte {
	h := sha256.New()
	h.Write(sender.Binary())
	h.Write(raw)
	return h.Sum(nil)
}

// seen reports whether the request with key was accepted before (within a week).
func (q *relayQueue) seen(ctx context.Context, key []byte) (bool, error) {
	var n int
	err := q.db.QueryRowContext(ctx, `SELECT count(*) FROM relay_seen WHERE key = ?`, key).Scan(&n)
	return n > 0, err
}

// sentSince is how many messages mailFrom had accepted since t (the per-claim rate).
func (q *relayQueue) sentSince(ctx context.Context, mailFrom string, t time.Time) (int, error) {
	var n int
	err := q.db.QueryRowContext(ctx, `SELECT count(*) FROM relay_sent WHERE mail_from = ? AND at >= ?`, mailFrom, t.UnixMilli()).Scan(&n)
	return n, err
}

// markSeen records a request that was answered without queueing (refused, bounced).
func (q *relayQueue) markSeen(ctx context.Context, key []byte, now time.Time) error {
	_, err := q.db.ExecContext(ctx, `INSERT INTO relay_seen (key, expires) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		key, now.Add(7*24*time.Hour).UnixMilli())
	return err
}

// add queues body for rcpts in one transaction (with the request's key and the rate record); it returns
// false if the key was seen before (nothing is added). It returns once the transaction is durable.
func (q *relayQueue) add(ctx context.Context, key []byte, sender identity.Address, mailFrom string, rcpts []string,
	body []byte, now time.Time) (bool, error) {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	ms := now.UnixMilli()
	if _, err := tx.ExecContext(ctx, `DELETE FROM relay_seen WHERE expires < ?`, ms); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM relay_sent WHERE at < ?`, now.Add(-time.Hour).UnixMilli()); err != nil {
		return false, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO relay_seen (key, expires) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		key, now.Add(7*24*time.Hour).UnixMilli())
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO relay_msg (sender, mail_from, body, created) VALUES (?, ?, ?, ?) RETURNING id`,
		sender.Binary(), mailFrom, body, ms).Scan(&id); err != nil {
		return false, err
	}
	for _, r := range rcpts {
		if _, err := tx.ExecContext(ctx, `INSERT INTO relay_rcpt (msg_id, rcpt, next_attempt) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			id, r, ms); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO relay_sent (mail_from, at) VALUES (?, ?)`, mailFrom, ms); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// due returns up to n recipients whose next attempt is at or before now, and the time of the next
// attempt after those (zero if none is queued).
func (q *relayQueue) due(ctx context.Context, now time.Time, n int) ([]relayJob, time.Time, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT r.msg_id, r.rcpt, r.attempts, m.sender, m.mail_from, m.body, m.created
		FROM relay_rcpt r JOIN relay_msg m ON m.id = r.msg_id WHERE r.next_attempt <= ? ORDER BY r.next_attempt LIMIT ?`,
		now.UnixMilli(), n)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rows.Close()
	var jobs []relayJob
	for rows.Next() {
		var j relayJob
		var sender []byte
		var created int64
		if err := rows.Scan(&j.msgID, &j.rcpt, &j.attempts, &sender, &j.mailFrom, &j.body, &created); err != nil {
			return nil, time.Time{}, err
		}
		if j.sender, err = identity.ParseBinaryAddress(sender); err != nil {
			return nil, time.Time{}, fmt.Errorf("stored sender: %w", err)
		}
		j.created = time.UnixMilli(created)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, err
	}
	var next sql.NullInt64
	if err := q.db.QueryRowContext(ctx, `SELECT min(next_attempt) FROM relay_rcpt WHERE next_attempt > ?`, now.UnixMilli()).Scan(&next); err != nil {
		return nil, time.Time{}, err
	}
	var at time.Time
	if next.Valid {
		at = time.UnixMilli(next.Int64)
	}
	return jobs, at, nil
}

// retry records a failed attempt and when to try again.
func (q *relayQueue) retry(ctx context.Context, j relayJob, next time.Time, lastErr string) error {
	_, err := q.db.ExecContext(ctx, `UPDATE relay_rcpt SET attempts = attempts + 1, next_attempt = ?, last_error = ?
		WHERE msg_id = ? AND rcpt = ?`, next.UnixMilli(), lastErr, j.msgID, j.rcpt)
	return err
}

// done removes a recipient (delivered or failed) and, with its last recipient, the message.
func (q *relayQueue) done(ctx context.Context, j relayJob) error {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM relay_rcpt WHERE msg_id = ? AND rcpt = ?`, j.msgID, j.rcpt); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM relay_msg WHERE id = ? AND NOT EXISTS (SELECT 1 FROM relay_rcpt WHERE msg_id = ?)`,
		j.msgID, j.msgID); err != nil {
		return err
	}
	return tx.Commit()
}

// pending is the number of queued recipients.
func (q *relayQueue) pending(ctx context.Context) (int, error) {
	var n int
	err := q.db.QueryRowContext(ctx, `SELECT count(*) FROM relay_rcpt`).Scan(&n)
	return n, err
}
