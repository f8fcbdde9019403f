package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ReplayKey identifies a sealed envelope (its HPKE encapsulated key, protocol.md §6): the inbox files
// an envelope with a given key at most once.
type ReplayKey [32]byte

// ClaimReplayKey records key as seen until expires. It returns false, and changes nothing, if the key
// was already recorded (even if expired but not yet pruned). Claim the key in the same transaction
// that files the message, so the message is filed exactly once.
func (tx *Tx) ClaimReplayKey(key ReplayKey, expires time.Time) (bool, error) {
	res, err := tx.exec(`INSERT OR IGNORE INTO replay_key (key, expires) VALUES (?, ?)`, key[:], expires.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("store: replay key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: replay key: %w", err)
	}
	return n == 1, nil
}

// DeliverOnce files m unless key was seen before: it claims the key and appends the message in one
// transaction. delivered is false (and nothing changes) for a replay. Concurrent calls with the same
// key file the message once.
func (s *Store) DeliverOnce(ctx context.Context, key ReplayKey, expires time.Time, m NewMessage) (a Appended, delivered bool, err error) {
	err = s.Update(ctx, func(tx *Tx) error {
		ok, err := tx.ClaimReplayKey(key, expires)
		if err != nil || !ok {
			return err
		}
		a, err = tx.Append(m)
		delivered = err == nil
		return err
	})
	if err != nil {
		return Appended{}, false, err
	}
	return a, delivered, nil
}

// SeenReplayKey reports whether key has been recorded.
func (s *Store) SeenReplayKey(ctx context.Context, key ReplayKey) (bool, error) {
	var seen bool
	err := s.read(ctx, func(tx cachedTx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM replay_key WHERE key = ?`, key[:]).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: replay key: %w", err)
		}
		seen = true
		return nil
	})
	return seen, err
}

// PruneReplayKeys deletes keys that expired before now and returns how many. Expiry must outlive
// every block that can still carry the envelope.
func (s *Store) PruneReplayKeys(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.Update(ctx, func(tx *Tx) error {
		res, err := tx.exec(`DELETE FROM replay_key WHERE expires < ?`, now.UnixMilli())
		if err != nil {
			return fmt.Errorf("store: prune replay keys: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}
