package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Contact maps a petname (the user's own name for someone, unique case-insensitively) to an address.
// The store does not interpret addresses.
type Contact struct {
	Petname string
	Address string
	Created time.Time
}

func petnameKey(p string) (string, error) {
	if p == "" || p != strings.TrimSpace(p) || len(p) > 200 || !utf8.ValidString(p) {
		return "", fmt.Errorf("%w: petname %q", ErrInvalidContact, p)
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("%w: petname %q", ErrInvalidContact, p)
		}
	}
	return strings.ToLower(p), nil
}

func checkAddress(a string) error {
	if a == "" || len(a) > 1000 || !utf8.ValidString(a) || strings.IndexFunc(a, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}) >= 0 {
		return fmt.Errorf("%w: address %q", ErrInvalidContact, a)
	}
	return nil
}

// AddContact adds a contact; ErrContactExists if the petname is taken (in any case).
func (s *Store) AddContact(ctx context.Context, petname, address string) error {
	key, err := petnameKey(petname)
	if err != nil {
		return err
	}
	if err := checkAddress(address); err != nil {
		return err
	}
	return s.Update(ctx, func(tx *Tx) error {
		res, err := tx.exec(`INSERT OR IGNORE INTO contact (petname_key, petname, address, created) VALUES (?, ?, ?, ?)`,
			key, petname, address, tx.s.now().UnixMilli())
		if err != nil {
			return fmt.Errorf("store: add contact: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %q", ErrContactExists, petname)
		}
		return nil
	})
}

// RemoveContact removes the contact with the petname (any case).
func (s *Store) RemoveContact(ctx context.Context, petname string) error {
	key, err := petnameKey(petname)
	if err != nil {
		return ErrNoContact
	}
	return s.Update(ctx, func(tx *Tx) error {
		res, err := tx.exec(`DELETE FROM contact WHERE petname_key = ?`, key)
		if err != nil {
			return fmt.Errorf("store: remove contact: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoContact
		}
		return nil
	})
}

// RenameContact changes a contact's petname (also just its case); ErrContactExists if the new one is
// another contact's.
func (s *Store) RenameContact(ctx context.Context, oldName, newName string) error {
	oldKey, err := petnameKey(oldName)
	if err != nil {
		return ErrNoContact
	}
	newKey, err := petnameKey(newName)
	if err != nil {
		return err
	}
	return s.Update(ctx, func(tx *Tx) error {
		if newKey != oldKey {
			var one int
			err := tx.queryRow(`SELECT 1 FROM contact WHERE petname_key = ?`, newKey).Scan(&one)
			if err == nil {
				return fmt.Errorf("%w: %q", ErrContactExists, newName)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: rename contact: %w", err)
			}
		}
		res, err := tx.exec(`UPDATE contact SET petname_key = ?, petname = ? WHERE petname_key = ?`, newKey, newName, oldKey)
		if err != nil {
			return fmt.Errorf("store: rename contact: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoContact
		}
		return nil
	})
}

func queryContacts(ctx context.Context, q querier, query string, args ...any) ([]Contact, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: contacts: %w", err)
	}
	defer rows.Close()
	var out []Contact
	for rows.Next() {
		var c Contact
		var created int64
		if err := rows.Scan(&c.Petname, &c.Address, &created); err != nil {
			return nil, fmt.Errorf("store: contacts: %w", err)
		}
		c.Created = time.UnixMilli(created)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Contacts lists all contacts by petname (case-insensitive order).
func (s *Store) Contacts(ctx context.Context) ([]Contact, error) {
	var out []Contact
	err := s.read(ctx, func(tx cachedTx) (err error) {
		out, err = queryContacts(ctx, tx, `SELECT petname, address, created FROM contact ORDER BY petname_key`)
		return err
	})
	return out, err
}

// Contact returns the contact with the petname (any case).
func (s *Store) Contact(ctx context.Context, petname string) (Contact, error) {
	key, err := petnameKey(petname)
	if err != nil {
		return Contact{}, ErrNoContact
	}
	var cs []Contact
	err = s.read(ctx, func(tx cachedTx) (err error) {
		cs, err = queryContacts(ctx, tx, `SELECT petname, address, created FROM contact WHERE petname_key = ?`, key)
		return err
	})
	if err == nil && len(cs) == 0 {
		err = ErrNoContact
	}
	if err != nil {
		return Contact{}, err
	}
	return cs[0], nil
}

// ContactsByAddress lists the contacts with the given address.
func (s *Store) ContactsByAddress(ctx context.Context, address string) ([]Contact, error) {
	var out []Contact
	err := s.read(ctx, func(tx cachedTx) (err error) {
		out, err = queryContacts(ctx, tx, `SELECT petname, address, created FROM contact WHERE address = ?
			ORDER BY petname_key`, address)
		return err
	})
	return out, err
}
