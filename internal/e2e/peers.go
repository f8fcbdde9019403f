package e2e

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/pgp"
	"github.com/tanglemail/tanglemail/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

var schema = sqlitedb.Schema{FS: migrationFiles, Dir: "migrations"}

// PeersFile is the peer-key table's file name in the data directory.
const PeersFile = "openpgp-peers.db"

// Peers is the durable table of correspondents' OpenPGP keys learnt from Autocrypt headers.
type Peers struct {
	db *sql.DB
}

// OpenPeers opens (creating with mode 0600 if needed) the table at path.
func OpenPeers(path string) (*Peers, error) {
	db, err := sqlitedb.OpenMigrated(path, sqlitedb.Options{
		Pragmas:   []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"},
		Immediate: true, MaxConns: 1, Mode: 0o600,
	}, schema)
	if err != nil {
		return nil, fmt.Errorf("e2e: open peer keys %s: %w", path, err)
	}
	return &Peers{db: db}, nil
}

// Close closes the table.
func (p *Peers) Close() error { return p.db.Close() }

// Peer is one row of the table.
type Peer struct {
	Addr          string
	Key           *pgp.PublicKey
	PreferEncrypt bool
	AutocryptAt   time.Time
}

// Learn records ac, carried by a mail of effective date date, if the table has nothing newer for its
// address: a header from a mail dated at or after the stored one replaces it (the newest date wins, so
// an old mail read late cannot roll a key back). It reports whether the row changed.
func (p *Peers) Learn(ctx context.Context, ac *pgp.Autocrypt, date, now time.Time) (bool, error) {
	res, err := p.db.ExecContext(ctx, `INSERT INTO peer (addr, fingerprint, keydata, prefer_encrypt, autocrypt_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (addr) DO UPDATE SET fingerprint = excluded.fingerprint, keydata = excluded.keydata,
			prefer_encrypt = excluded.prefer_encrypt, autocrypt_at = excluded.autocrypt_at, updated_at = excluded.updated_at
		WHERE excluded.autocrypt_at >= peer.autocrypt_at`,
		strings.ToLower(ac.Addr), ac.Key.Fingerprint(), ac.Key.Bytes(), ac.PreferEncrypt, date.Unix(), now.Unix())
	if err != nil {
		return false, fmt.Errorf("e2e: learn key of %s: %w", ac.Addr, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Get returns the key recorded for addr (ok false if none). A stored key that no longer parses or has
// expired at now counts as none.
func (p *Peers) Get(ctx context.Context, addr string, now time.Time) (peer Peer, ok bool, err error) {
	var kd []byte
	var pref bool
	var at int64
	err = p.db.QueryRowContext(ctx, `SELECT keydata, prefer_encrypt, autocrypt_at FROM peer WHERE addr = ?`,
		strings.ToLower(addr)).Scan(&kd, &pref, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Peer{}, false, nil
	}
	if err != nil {
		return Peer{}, false, fmt.Errorf("e2e: key of %s: %w", addr, err)
	}
	k, err := pgp.ParsePublicKey(kd, now)
	if err != nil {
		return Peer{}, false, nil
	}
	return Peer{Addr: strings.ToLower(addr), Key: k, PreferEncrypt: pref, AutocryptAt: time.Unix(at, 0)}, true, nil
}
