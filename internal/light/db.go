package light

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/tanglemail/tanglemail/internal/sqlitedb"
)

// DB is light.db: per provider, the fetch cursor and the quota notices sent. Schema (migrations/):
//
//	provider (name TEXT PRIMARY KEY, cursor INTEGER, noticed INTEGER, updated_at INTEGER)
//	subscription (name TEXT PRIMARY KEY, sub_id BLOB, key_seed BLOB, created_at INTEGER, addr TEXT)
//
// The subscription table is the one place a data directory's storage subscriptions live: the light
// client (and a full node's cover) creates or uses them, and "tanglemail storage subscribe" creates,
// pays and renews them (node.SubscribeStorage). name is the provider's peer id.
//
// It is written with synchronous=FULL: a cursor that SetCursor returned for is on disk. The file is
// mode 0600: it holds the subscriptions' keys (a fresh Ed25519 key per subscription, never the
// identity's), which let whoever has them fetch and release the subscriber's stored blocks.
type DB struct{ db *sql.DB }

//go:embed migrations/*.sql
var migrations embed.FS

var schema = sqlitedb.Schema{FS: migrations, Dir: "migrations"}

// OpenDB opens (creating, mode 0600) the light client's database at path.
func OpenDB(path string) (*DB, error) {
	db, err := sqlitedb.OpenMigrated(path, sqlitedb.Options{MaxConns: 1, Immediate: true, Mode: 0o600,
		Pragmas: []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"}}, schema)
	if err != nil {
		return nil, fmt.Errorf("light: database %s: %w", path, err)
	}
	return &DB{db: db}, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// state returns a provider's cursor and notice level (zero for a provider not seen before).
func (d *DB) state(ctx context.Context, name string) (Cursor, int, error) {
	var c int64
	var noticed int
	err := d.db.QueryRowContext(ctx, `SELECT cursor, noticed FROM provider WHERE name = ?`, name).Scan(&c, &noticed)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("light: read cursor: %w", err)
	}
	return Cursor(c), noticed, nil
}

// Cursor returns the persisted cursor of a provider.
func (d *DB) Cursor(ctx context.Context, name string) (Cursor, error) {
	c, _, err := d.state(ctx, name)
	return c, err
}

// setCursor persists a provider's cursor (durably, before it returns).
func (d *DB) setCursor(ctx context.Context, name string, c Cursor) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO provider (name, cursor, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`,
		name, int64(c), time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("light: persist cursor: %w", err)
	}
	return nil
}

// setNoticed records the quota notices sent to a provider's subscriber.
func (d *DB) setNoticed(ctx context.Context, name string, level int) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO provider (name, noticed, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET noticed = excluded.noticed, updated_at = excluded.updated_at`,
		name, level, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("light: record quota notice: %w", err)
	}
	return nil
}

// Subscription returns the subscription id and key seed kept for a provider (ok false: none yet).
func (d *DB) Subscription(ctx context.Context, name string) (id [16]byte, seed []byte, ok bool, err error) {
	var raw []byte
	err = d.db.QueryRowContext(ctx, `SELECT sub_id, key_seed FROM subscription WHERE name = ?`, name).Scan(&raw, &seed)
	if errors.Is(err, sql.ErrNoRows) {
		return id, nil, false, nil
	}
	if err != nil {
		return id, nil, false, fmt.Errorf("light: read subscription: %w", err)
	}
	if len(raw) != len(id) {
		return id, nil, false, fmt.Errorf("light: subscription of %s: id of %d bytes", name, len(raw))
	}
	copy(id[:], raw)
	return id, seed, true, nil
}

// SaveSubscription keeps a new subscription's id and key seed for a provider (replacing an old one);
// addr is the provider's multiaddr (with /p2p/<name>), kept so that a light client can start from it.
func (d *DB) SaveSubscription(ctx context.Context, name, addr string, id [16]byte, seed []byte) error {
	_, err := d.db.ExecContext(ctx, `INSERT INTO subscription (name, sub_id, key_seed, created_at, addr) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET sub_id = excluded.sub_id, key_seed = excluded.key_seed,
		created_at = excluded.created_at, addr = excluded.addr`, name, id[:], seed, time.Now().UnixMilli(), addr)
	if err != nil {
		return fmt.Errorf("light: keep subscription: %w", err)
	}
	return nil
}

// SavedSubscription is a kept subscription without its key.
type SavedSubscription struct {
	Name string   // the provider's peer id
	Addr string   // the provider's multiaddr with /p2p/ ("" if created before it was kept)
	ID   [16]byte // the subscription id
}

// Subscriptions lists the kept subscriptions (by name).
func (d *DB) Subscriptions(ctx context.Context) ([]SavedSubscription, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, addr, sub_id FROM subscription ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("light: list subscriptions: %w", err)
	}
	defer rows.Close()
	var out []SavedSubscription
	for rows.Next() {
		var s SavedSubscription
		var raw []byte
		if err := rows.Scan(&s.Name, &s.Addr, &raw); err != nil {
			return nil, fmt.Errorf("light: list subscriptions: %w", err)
		}
		copy(s.ID[:], raw)
		out = append(out, s)
	}
	return out, rows.Err()
}
