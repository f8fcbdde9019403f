package payment

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/tanglemail/tanglemail/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

var schema = sqlitedb.Schema{FS: migrationFiles, Dir: "migrations"}

// Ledger is payment.db: what this node paid (subscriber) and counted (provider).
type Ledger struct {
	db *sql.DB
}

// OpenLedger opens (creating with mode 0600 if needed) the ledger at path and brings its schema up to
// date.
func OpenLedger(path string) (*Ledger, error) {
	db, err := sqlitedb.OpenMigrated(path, sqlitedb.Options{
		Pragmas:   []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"},
		Immediate: true, MaxConns: 1, Mode: 0o600,
	}, schema)
	if err != nil {
		return nil, fmt.Errorf("payment: open ledger %s: %w", path, err)
	}
	return &Ledger{db: db}, nil
}

// Close closes the database.
func (l *Ledger) Close() error { return l.db.Close() }

// SentTx returns the transaction recorded for the quote with this digest, if any.
func (l *Ledger) SentTx(ctx context.Context, digest [32]byte) (tx TxID, raw []byte, ok bool, err error) {
	var id []byte
	err = l.db.QueryRowContext(ctx, `SELECT tx_id, raw FROM sent_tx WHERE quote_digest = ?`, digest[:]).Scan(&id, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return tx, nil, false, nil
	}
	if err != nil {
		return tx, nil, false, fmt.Errorf("payment: ledger: %w", err)
	}
	copy(tx[:], id)
	return tx, raw, true, nil
}

// RecordSent durably records the signed transaction paying q, before it is sent. A quote already
// recorded keeps its first transaction: the stored one is returned with ok = false.
func (l *Ledger) RecordSent(ctx context.Context, q *Quote, tx TxID, raw []byte) (stored TxID, storedRaw []byte, ok bool, err error) {
	enc, err := q.Encode()
	if err != nil {
		return tx, nil, false, err
	}
	d := q.Digest()
	res, err := l.db.ExecContext(ctx, `INSERT INTO sent_tx (quote_digest, tx_id, raw, quote, created_at, sub)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (quote_digest) DO NOTHING`, d[:], tx[:], raw, enc, time.Now().UnixMilli(), q.Sub[:])
	if err != nil {
		return tx, nil, false, fmt.Errorf("payment: ledger: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return tx, raw, true, nil
	}
	stored, storedRaw, _, err = l.SentTx(ctx, d)
	return stored, storedRaw, false, err
}

// SentRaw returns the signed transaction recorded as tx (RecordSent), if any.
func (l *Ledger) SentRaw(ctx context.Context, tx TxID) (raw []byte, ok bool, err error) {
	err = l.db.QueryRowContext(ctx, `SELECT raw FROM sent_tx WHERE tx_id = ?`, tx[:]).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("payment: ledger: %w", err)
	}
	return raw, true, nil
}

// Unsettled returns the latest transaction sent for subscription sub whose payment is not settled
// (Settle): a payment an interrupted run sent and did not see activated. Resuming it, rather than
// paying a new quote, is what keeps a re-run from paying twice.
func (l *Ledger) Unsettled(ctx context.Context, sub SubID) (q *Quote, tx TxID, ok bool, err error) {
	var id, enc []byte
	err = l.db.QueryRowContext(ctx, `SELECT tx_id, quote FROM sent_tx WHERE sub = ? AND settled_at IS NULL
		ORDER BY created_at DESC, rowid DESC LIMIT 1`, sub[:]).Scan(&id, &enc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tx, false, nil
	}
	if err != nil {
		return nil, tx, false, fmt.Errorf("payment: ledger: %w", err)
	}
	if q, err = DecodeQuote(enc); err != nil {
		return nil, tx, false, fmt.Errorf("payment: ledger: stored quote: %w", err)
	}
	copy(tx[:], id)
	return q, tx, true, nil
}

// Settle records that the payment sent as tx is settled: the provider activated it or refused it for
// good. It is no longer resumed.
func (l *Ledger) Settle(ctx context.Context, tx TxID) error {
	if _, err := l.db.ExecContext(ctx, `UPDATE sent_tx SET settled_at = ? WHERE tx_id = ? AND settled_at IS NULL`,
		time.Now().UnixMilli(), tx[:]); err != nil {
		return fmt.Errorf("payment: ledger: %w", err)
	}
	return nil
}

// Claim is one counted payment.
type Claim struct {
	Tx        TxID
	Sub       SubID
	Quote     *Quote
	PaidUntil time.Time
	// Fresh is true when this call counted the transaction; false when it had been counted before for
	// the same quote (a payment seen twice).
	Fresh     bool
	Activated bool
}

// Claim counts tx as the payment of q (verified by the caller with Rail.Verify) at now, once ever: the
// same transaction for the same quote returns the first claim (Fresh false); for another quote or
// subscription, or another transaction for an already paid quote, ErrAlreadyCounted. The paid-until
// is max(now, the subscription's latest paid-until) + q.Days, fixed here.
func (l *Ledger) Claim(ctx context.Context, tx TxID, q *Quote, p Payment, now time.Time) (Claim, error) {
	enc, err := q.Encode()
	if err != nil {
		return Claim{}, err
	}
	d := q.Digest()
	dbtx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return Claim{}, fmt.Errorf("payment: ledger: %w", err)
	}
	defer dbtx.Rollback()
	var (
		prevDigest, prevSub []byte
		until               int64
		activated           sql.NullInt64
	)
	err = dbtx.QueryRowContext(ctx, `SELECT quote_digest, sub, paid_until, activated_at FROM counted_tx WHERE tx_id = ?`, tx[:]).
		Scan(&prevDigest, &prevSub, &until, &activated)
	switch {
	case err == nil:
		if !bytes.Equal(prevDigest, d[:]) {
			return Claim{}, fmt.Errorf("%w: %s was counted for subscription %x", ErrAlreadyCounted, tx, prevSub)
		}
		return Claim{Tx: tx, Sub: q.Sub, Quote: q, PaidUntil: time.Unix(until, 0).UTC(), Activated: activated.Valid}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Claim{}, fmt.Errorf("payment: ledger: %w", err)
	}
	var other []byte
	err = dbtx.QueryRowContext(ctx, `SELECT tx_id FROM counted_tx WHERE quote_digest = ?`, d[:]).Scan(&other)
	if err == nil {
		return Claim{}, fmt.Errorf("%w: the quote was already paid by 0x%x", ErrAlreadyCounted, other)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return Claim{}, fmt.Errorf("payment: ledger: %w", err)
	}
	base := now.Unix()
	var prev sql.NullInt64
	if err := dbtx.QueryRowContext(ctx, `SELECT MAX(paid_until) FROM counted_tx WHERE sub = ?`, q.Sub[:]).Scan(&prev); err != nil {
		return Claim{}, fmt.Errorf("payment: ledger: %w", err)
	}
	if prev.Valid && prev.Int64 > base {
		base = prev.Int64
	}
	until = base + int64(q.Days)*86400
	value := "0"
	if p.Value != nil {
		value = p.Value.String()
	}
	if _, err := dbtx.ExecContext(ctx, `INSERT INTO counted_tx (tx_id, quote_digest, sub, quote, value_wei, block, paid_until, counted_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, tx[:], d[:], q.Sub[:], enc, value, int64(p.Block), until, now.Unix()); err != nil {
		return Claim{}, fmt.Errorf("payment: ledger: %w", err)
	}
	if err := dbtx.Commit(); err != nil {
		return Claim{}, fmt.Errorf("payment: ledger: %w", err)
	}
	return Claim{Tx: tx, Sub: q.Sub, Quote: q, PaidUntil: time.Unix(until, 0).UTC(), Fresh: true}, nil
}

// MarkActivated records that the claim of tx was handed to Activate.
func (l *Ledger) MarkActivated(ctx context.Context, tx TxID, now time.Time) error {
	_, err := l.db.ExecContext(ctx, `UPDATE counted_tx SET activated_at = ? WHERE tx_id = ? AND activated_at IS NULL`, now.Unix(), tx[:])
	if err != nil {
		return fmt.Errorf("payment: ledger: %w", err)
	}
	return nil
}

// Unactivated returns the claims counted but not yet marked activated (after a crash between the two),
// oldest first.
func (l *Ledger) Unactivated(ctx context.Context) ([]Claim, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT tx_id, quote, paid_until FROM counted_tx WHERE activated_at IS NULL ORDER BY counted_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("payment: ledger: %w", err)
	}
	defer rows.Close()
	var out []Claim
	for rows.Next() {
		var (
			id, enc []byte
			until   int64
		)
		if err := rows.Scan(&id, &enc, &until); err != nil {
			return nil, fmt.Errorf("payment: ledger: %w", err)
		}
		q, err := DecodeQuote(enc)
		if err != nil {
			return nil, fmt.Errorf("payment: ledger: stored quote: %w", err)
		}
		c := Claim{Sub: q.Sub, Quote: q, PaidUntil: time.Unix(until, 0).UTC()}
		copy(c.Tx[:], id)
		out = append(out, c)
	}
	return out, rows.Err()
}

// PaidUntil returns the end of the subscription's paid period (zero time if never paid).
func (l *Ledger) PaidUntil(ctx context.Context, sub SubID) (time.Time, error) {
	var v sql.NullInt64
	if err := l.db.QueryRowContext(ctx, `SELECT MAX(paid_until) FROM counted_tx WHERE sub = ?`, sub[:]).Scan(&v); err != nil {
		return time.Time{}, fmt.Errorf("payment: ledger: %w", err)
	}
	if !v.Valid {
		return time.Time{}, nil
	}
	return time.Unix(v.Int64, 0).UTC(), nil
}
