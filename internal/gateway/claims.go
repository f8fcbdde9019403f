package gateway

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrations embed.FS

var schema = sqlitedb.Schema{FS: migrations, Dir: "migrations"}

// ClaimsFile is the claims database's file name in the gateway's directory.
const ClaimsFile = "gateway.db"

// Claim refusals. Apply's errors wrap one of these (or ErrClaimMalformed); the HTTP API maps them to
// status codes.
var (
	ErrClaimStale    = errors.New("gateway: claim request time is too far from the gateway's clock")
	ErrClaimReplayed = errors.New("gateway: claim request already seen")
	ErrClaimGateway  = errors.New("gateway: claim request is for another gateway or domain")
	ErrClaimRole     = errors.New("gateway: role addresses (RFC 2142) are the operator's")
	ErrClaimPolicy   = errors.New("gateway: the gateway's policy does not allow this claimant")
	ErrClaimTaken    = errors.New("gateway: address claimed by another identity")
	ErrClaimNone     = errors.New("gateway: no such claim by this identity")
)

// RoleNames are the mailbox names of RFC 2142 (§3–§5). They cannot be claimed: mail to any of them
// goes to the operator.
var RoleNames = []string{"info", "marketing", "sales", "support", "abuse", "noc", "security",
	"postmaster", "hostmaster", "usenet", "news", "webmaster", "www", "uucp", "ftp"}

// IsRole reports whether local is an RFC 2142 role name.
func IsRole(local string) bool { return slices.Contains(RoleNames, local) }

// Policy says who may claim addresses. The operator decides it (tanglemail gateway --policy).
type Policy struct {
	// Open lets any identity claim any unclaimed, non-role address.
	Open bool
	// Allow, when Open is false, lists the claimants (tanglemail addresses) who may claim.
	Allow []identity.Address
}

func (p Policy) allows(a identity.Address) bool {
	if p.Open {
		return true
	}
	return slices.ContainsFunc(p.Allow, a.Equal)
}

// Claims is the gateway's durable claim table. Safe for concurrent use: SQLite serializes the writes
// (one connection, BEGIN IMMEDIATE), and each Apply is one transaction.
type Claims struct {
	db       *sql.DB
	gateway  identity.Address
	domains  []string
	operator identity.Address
	policy   Policy
}

// OpenClaims opens (creating, mode 0600) the claims database at path for the gateway whose address is
// gw, serving domains, with role mail going to operator.
func OpenClaims(path string, gw identity.Address, domains []string, operator identity.Address, p Policy) (*Claims, error) {
	db, err := sqlitedb.OpenMigrated(path, sqlitedb.Options{MaxConns: 1, Immediate: true, Mode: 0o600,
		Pragmas: []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"}}, schema)
	if err != nil {
		return nil, fmt.Errorf("gateway: claims database %s: %w", path, err)
	}
	ds := make([]string, len(domains))
	for i, d := range domains {
		ds[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	return &Claims{db: db, gateway: gw, domains: ds, operator: operator, policy: p}, nil
}

// Close closes the database.
func (c *Claims) Close() error { return c.db.Close() }

// Domains are the domains the gateway serves.
func (c *Claims) Domains() []string { return slices.Clone(c.domains) }

// Apply checks a decoded request against the gateway (its address, domains, clock, nonces, roles,
// policy) and, if it passes, records the claim or removes it, durably, before it returns nil.
func (c *Claims) Apply(ctx context.Context, r *ClaimRequest, now time.Time) error {
	if !r.Gateway.Equal(c.gateway) || !slices.Contains(c.domains, r.Domain) {
		return ErrClaimGateway
	}
	if d := now.Sub(r.Time); d > ClaimSkew || d < -ClaimSkew {
		return ErrClaimStale
	}
	if r.Op == OpClaim {
		if IsRole(r.Local) {
			return ErrClaimRole
		}
		if !c.policy.allows(r.Claimant) {
			return ErrClaimPolicy
		}
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("gateway: claims: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM claim_nonce WHERE expires < ?`, now.UnixMilli()); err != nil {
		return fmt.Errorf("gateway: claims: %w", err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO claim_nonce (nonce, expires) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		r.Nonce[:], r.Time.Add(ClaimSkew).UnixMilli())
	if err != nil {
		return fmt.Errorf("gateway: claims: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrClaimReplayed
	}
	var cur []byte
	err = tx.QueryRowContext(ctx, `SELECT claimant FROM claim WHERE addr = ?`, r.Addr()).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("gateway: claims: %w", err)
	}
	mine := err == nil && string(cur) == string(r.Claimant.Binary())
	switch r.Op {
	case OpClaim:
		if err == nil && !mine {
			return ErrClaimTaken
		}
		if !mine {
			if _, err := tx.ExecContext(ctx, `INSERT INTO claim (addr, claimant, created) VALUES (?, ?, ?)`,
				r.Addr(), r.Claimant.Binary(), now.UnixMilli()); err != nil {
				return fmt.Errorf("gateway: claims: %w", err)
			}
		}
	case OpRevoke:
		if !mine {
			return ErrClaimNone
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM claim WHERE addr = ?`, r.Addr()); err != nil {
			return fmt.Errorf("gateway: claims: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("gateway: claims: %w", err)
	}
	return nil
}

// Lookup returns the tanglemail address that mail to addr (local@domain, any case) is delivered to:
// the operator's for a role name of a served domain, the claimant's for a claimed address; ok is false
// for anything else (the MX answers 550 5.1.1).
func (c *Claims) Lookup(ctx context.Context, addr string) (to identity.Address, ok bool, err error) {
	local, domain, found := strings.Cut(strings.ToLower(addr), "@")
	if !found || !slices.Contains(c.domains, strings.TrimSuffix(domain, ".")) {
		return identity.Address{}, false, nil
	}
	if IsRole(local) {
		return c.operator, c.operator.Key != nil, nil
	}
	var b []byte
	err = c.db.QueryRowContext(ctx, `SELECT claimant FROM claim WHERE addr = ?`, local+"@"+strings.TrimSuffix(domain, ".")).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return identity.Address{}, false, nil
	}
	if err != nil {
		return identity.Address{}, false, fmt.Errorf("gateway: claims: %w", err)
	}
	a, err := identity.ParseBinaryAddress(b)
	if err != nil {
		return identity.Address{}, false, fmt.Errorf("gateway: claims: stored claimant: %w", err)
	}
	return a, true, nil
}

// Count is the number of active claims.
func (c *Claims) Count(ctx context.Context) (int, error) {
	var n int
	err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM claim`).Scan(&n)
	return n, err
}
