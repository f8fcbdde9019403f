package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/storage/wire"
)

// ErrQuota: an upload would take a subscription past its quota or the provider past its disk cap.
var ErrQuota = errors.New("storage: over quota")

// ChargeBlob counts the upload of a sealed blob of bytes bytes (the subscriber's large mail, which the
// node's blob store holds until expires, protocol.md §13.8 sender rule 3) against the quota of the
// subscription that peer last authenticated for (Subscriber): in the subscription's used bytes, until
// the blob expires (Prune). Charging the same blob again (a resumed upload) costs nothing. It refuses
// with ErrQuota when the blob does not fit the quota or the disk cap, and with ErrNotFound or the
// subscription's state when peer is not an active subscriber.
func (p *Provider) ChargeBlob(ctx context.Context, pr peer.ID, blob [32]byte, bytes uint64, expires time.Time) error {
	id, err := p.subscriberOf(pr)
	if err != nil {
		return err
	}
	return p.writeTx(ctx, func(tx *sql.Tx) (func(), error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM blob_charges WHERE sub = ? AND blob = ?`, id[:], blob[:]).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, nil
		}
		p.mu.Lock()
		cur, ok := p.subs[id]
		var used, quota uint64
		if ok {
			used, quota = cur.used, cur.quota
		}
		total := p.used
		p.mu.Unlock()
		if !ok {
			return nil, ErrNotFound
		}
		if used+bytes > quota {
			p.ctr.refusedQuota.Add(1)
			return nil, fmt.Errorf("%w: an upload of %d bytes would take the subscription past its quota (%d of %d bytes used)", ErrQuota, bytes, used, quota)
		}
		if total+bytes > uint64(p.cfg.CapBytes) {
			p.ctr.refusedQuota.Add(1)
			return nil, fmt.Errorf("%w: the provider's disk is full", ErrQuota)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO blob_charges (sub, blob, bytes, expires) VALUES (?, ?, ?, ?)`,
			id[:], blob[:], bytes, expires.UnixMilli()); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE subs SET used_bytes = used_bytes + ? WHERE id = ?`, bytes, id[:]); err != nil {
			return nil, err
		}
		return func() {
			p.mu.Lock()
			if s, ok := p.subs[id]; ok {
				s.used += bytes
			}
			p.used += bytes
			p.mu.Unlock()
		}, nil
	})
}

// pruneBlobCharges ends the charges of the blobs expired at nowMs.
func (p *Provider) pruneBlobCharges(ctx context.Context, nowMs int64) error {
	return p.writeTx(ctx, func(tx *sql.Tx) (func(), error) {
		rows, err := tx.QueryContext(ctx, `SELECT sub, SUM(bytes) FROM blob_charges WHERE expires <= ? GROUP BY sub`, nowMs)
		if err != nil {
			return nil, err
		}
		freed := map[wire.SubID]uint64{}
		for rows.Next() {
			var sub []byte
			var bytes uint64
			if err := rows.Scan(&sub, &bytes); err != nil {
				rows.Close()
				return nil, err
			}
			var id wire.SubID
			copy(id[:], sub)
			freed[id] = bytes
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(freed) == 0 {
			return nil, nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM blob_charges WHERE expires <= ?`, nowMs); err != nil {
			return nil, err
		}
		for id, bytes := range freed {
			if _, err := tx.ExecContext(ctx, `UPDATE subs SET used_bytes = used_bytes - ? WHERE id = ?`, bytes, id[:]); err != nil {
				return nil, err
			}
		}
		return func() {
			p.mu.Lock()
			for id, bytes := range freed {
				if s, ok := p.subs[id]; ok {
					s.used -= bytes
					p.used -= bytes
				}
			}
			p.mu.Unlock()
		}, nil
	})
}
