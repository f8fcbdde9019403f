package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Delimiter separates the levels of mailbox names.
const Delimiter = "/"

// Role says what a mailbox is for. Every role except RoleNone belongs to exactly one mailbox, created on
// first Open; the layers above find these mailboxes by role, so a user may rename them.
type Role string

// Roles.
const (
	RoleNone    Role = ""
	RoleInbox   Role = "inbox"
	RoleSent    Role = "sent"
	RoleDrafts  Role = "drafts"
	RoleTrash   Role = "trash"
	RoleJunk    Role = "junk"
	RoleArchive Role = "archive"
	RoleChats   Role = "chats" // chat conversations, readable as mail; no special-use attribute
)

// roleMailboxes lists the role mailboxes with their default names, in creation order.
var roleMailboxes = []struct {
	role Role
	name string
}{
	{RoleInbox, "INBOX"},
	{RoleSent, "Sent"},
	{RoleDrafts, "Drafts"},
	{RoleTrash, "Trash"},
	{RoleJunk, "Junk"},
	{RoleArchive, "Archive"},
	{RoleChats, "Chats"},
}

// SpecialUse returns the role's RFC 6154 special-use attribute, or "" if it has none.
func (r Role) SpecialUse() string {
	switch r {
	case RoleSent:
		return `\Sent`
	case RoleDrafts:
		return `\Drafts`
	case RoleTrash:
		return `\Trash`
	case RoleJunk:
		return `\Junk`
	case RoleArchive:
		return `\Archive`
	}
	return ""
}

// MailboxID names a mailbox (the mailbox table's id). Ids are never reused; a mailbox keeps its id
// through RENAME.
type MailboxID int64

// Mailbox is a mailbox and its IMAP state.
type Mailbox struct {
	ID            MailboxID
	Name          string
	Role          Role
	SpecialUse    string // RFC 6154 attribute (e.g. `\Sent`), "" if none
	UIDValidity   uint32
	UIDNext       UID
	HighestModSeq uint64
	Keywords      []string // keywords used by messages in this mailbox (IMAP FLAGS), sorted
	Subscribed    bool
	HasChildren   bool

	Messages uint32 // not expunged
	Unseen   uint32
	Deleted  uint32 // with \Deleted
	Size     int64  // sum of message sizes
}

// Status is the IMAP STATUS of a mailbox.
type Status struct {
	Messages      uint32
	Unseen        uint32
	Deleted       uint32
	Size          int64
	UIDNext       UID
	UIDValidity   uint32
	HighestModSeq uint64
}

// Status returns the mailbox's status.
func (m Mailbox) Status() Status {
	return Status{m.Messages, m.Unseen, m.Deleted, m.Size, m.UIDNext, m.UIDValidity, m.HighestModSeq}
}

const mailboxCols = `id, name, role, uidvalidity, uidnext, highest_modseq, keywords,
	messages, unseen, deleted, size,
	EXISTS (SELECT 1 FROM subscription s WHERE s.name = mailbox.name),
	EXISTS (SELECT 1 FROM mailbox c WHERE c.name > mailbox.name || '/' AND c.name < mailbox.name || '0')`

type scanner interface{ Scan(dest ...any) error }

func scanMailbox(r scanner) (Mailbox, error) {
	var m Mailbox
	var role, kw string
	var uidnext int64
	err := r.Scan(&m.ID, &m.Name, &role, &m.UIDValidity, &uidnext, &m.HighestModSeq, &kw,
		&m.Messages, &m.Unseen, &m.Deleted, &m.Size, &m.Subscribed, &m.HasChildren)
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, ErrNoMailbox
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("store: mailbox: %w", err)
	}
	m.Role = Role(role)
	m.SpecialUse = m.Role.SpecialUse()
	m.UIDNext = UID(uidnext)
	m.Keywords = parseKeywordsColumn(kw)
	return m, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func mailboxBy(ctx context.Context, q querier, cond string, arg any) (Mailbox, error) {
	return scanMailbox(q.QueryRowContext(ctx, `SELECT `+mailboxCols+` FROM mailbox WHERE `+cond, arg))
}

// NormalizeName validates a mailbox name and returns its canonical form: "INBOX" (in any case) is
// "INBOX", also as the first level of a hierarchical name. Names are UTF-8 with levels separated by
// "/", without empty levels, control characters or the LIST wildcards "*" and "%".
func NormalizeName(name string) (string, error) {
	if name == "" || len(name) > 1000 || !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '*' || r == '%' {
			return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
		}
	}
	levels := strings.Split(name, Delimiter)
	for _, l := range levels {
		if l == "" {
			return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
		}
	}
	if strings.EqualFold(levels[0], "INBOX") {
		levels[0] = "INBOX"
	}
	return strings.Join(levels, Delimiter), nil
}

// Mailboxes lists all mailboxes, ordered by name (byte order, so a parent precedes its children).
func (s *Store) Mailboxes(ctx context.Context) ([]Mailbox, error) {
	var out []Mailbox
	err := s.read(ctx, func(tx cachedTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+mailboxCols+` FROM mailbox ORDER BY name`)
		if err != nil {
			return fmt.Errorf("store: mailboxes: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMailbox(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// Mailbox returns the mailbox with the given name (ErrNoMailbox if none).
func (s *Store) Mailbox(ctx context.Context, name string) (Mailbox, error) {
	name, err := NormalizeName(name)
	if err != nil {
		return Mailbox{}, ErrNoMailbox
	}
	var m Mailbox
	err = s.read(ctx, func(tx cachedTx) error {
		m, err = mailboxBy(ctx, tx, "name = ?", name)
		return err
	})
	return m, err
}

// MailboxByID returns the mailbox with the given id (ErrNoMailbox if none).
func (s *Store) MailboxByID(ctx context.Context, id MailboxID) (Mailbox, error) {
	var m Mailbox
	err := s.read(ctx, func(tx cachedTx) (err error) {
		m, err = mailboxBy(ctx, tx, "id = ?", id)
		return err
	})
	return m, err
}

// MailboxByRole returns the mailbox with the given role.
func (s *Store) MailboxByRole(ctx context.Context, role Role) (Mailbox, error) {
	if role == RoleNone {
		return Mailbox{}, ErrNoMailbox
	}
	var m Mailbox
	err := s.read(ctx, func(tx cachedTx) (err error) {
		m, err = mailboxBy(ctx, tx, "role = ?", string(role))
		return err
	})
	return m, err
}

// Status returns the status of the mailbox with the given id.
func (s *Store) Status(ctx context.Context, mailboxID MailboxID) (Status, error) {
	m, err := s.MailboxByID(ctx, mailboxID)
	return m.Status(), err
}

// MailboxByRole returns the mailbox with the given role, inside the transaction.
func (tx *Tx) MailboxByRole(role Role) (Mailbox, error) {
	if role == RoleNone {
		return Mailbox{}, ErrNoMailbox
	}
	return mailboxBy(tx.ctx, tx.tx, "role = ?", string(role))
}

// MailboxByID returns the mailbox with the given id, inside the transaction.
func (tx *Tx) MailboxByID(id MailboxID) (Mailbox, error) {
	return mailboxBy(tx.ctx, tx.tx, "id = ?", id)
}

func (tx *Tx) mailboxByName(name string) (Mailbox, error) {
	return mailboxBy(tx.ctx, tx.tx, "name = ?", name)
}

func (tx *Tx) nameExists(name string) (bool, error) {
	var one int
	err := tx.queryRow(`SELECT 1 FROM mailbox WHERE name = ?`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: mailbox: %w", err)
	}
	return true, nil
}

// insertMailbox creates a mailbox (the name must be normalised and free) with a fresh UIDVALIDITY.
func (tx *Tx) insertMailbox(name string, role Role) (MailboxID, error) {
	uv, err := tx.nextUIDValidity()
	if err != nil {
		return 0, err
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return 0, err
	}
	var id MailboxID
	err = tx.queryRow(`INSERT INTO mailbox (name, role, uidvalidity, uidnext, highest_modseq, createseq)
		VALUES (?, ?, ?, 1, ?, ?) RETURNING id`, name, string(role), int64(uv), ms, ms).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: create mailbox: %w", err)
	}
	tx.emit(ChangeMailboxAdd{MailboxID: id, Name: name, SpecialUse: role.SpecialUse(), ModSeq: ms})
	return id, nil
}

// createParents creates the missing superior names of name (RFC 3501 §6.3.3).
func (tx *Tx) createParents(name string) error {
	levels := strings.Split(name, Delimiter)
	for i := 1; i < len(levels); i++ {
		p := strings.Join(levels[:i], Delimiter)
		ok, err := tx.nameExists(p)
		if err != nil {
			return err
		}
		if !ok {
			if _, err := tx.insertMailbox(p, RoleNone); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureRoleMailboxes creates the role mailboxes that do not exist, subscribed. If a mailbox without a
// role already has the default name, it gets the role.
func (tx *Tx) ensureRoleMailboxes() error {
	for _, rm := range roleMailboxes {
		if _, err := tx.MailboxByRole(rm.role); err == nil {
			continue
		} else if !errors.Is(err, ErrNoMailbox) {
			return err
		}
		m, err := tx.mailboxByName(rm.name)
		switch {
		case err == nil && m.Role == RoleNone:
			if _, err := tx.exec(`UPDATE mailbox SET role = ? WHERE id = ?`, string(rm.role), m.ID); err != nil {
				return fmt.Errorf("store: role mailbox: %w", err)
			}
			continue
		case err == nil:
			return fmt.Errorf("store: role mailbox name %q taken by role %q", rm.name, m.Role)
		case !errors.Is(err, ErrNoMailbox):
			return err
		}
		if _, err := tx.insertMailbox(rm.name, rm.role); err != nil {
			return err
		}
		if err := tx.setSubscribed(rm.name, true); err != nil {
			return err
		}
	}
	return nil
}

// CreateMailbox creates a mailbox, and any missing superior names. It does not subscribe it.
func (s *Store) CreateMailbox(ctx context.Context, name string) (Mailbox, error) {
	name, err := NormalizeName(name)
	if err != nil {
		return Mailbox{}, err
	}
	var m Mailbox
	err = s.Update(ctx, func(tx *Tx) error {
		ok, err := tx.nameExists(name)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%w: %q", ErrMailboxExists, name)
		}
		if err := tx.createParents(name); err != nil {
			return err
		}
		id, err := tx.insertMailbox(name, RoleNone)
		if err != nil {
			return err
		}
		m, err = tx.MailboxByID(id)
		return err
	})
	return m, err
}

// RenameMailbox renames a mailbox and its inferior names (RFC 3501 §6.3.5), creating missing superior
// names of the new name. The mailboxes keep their ids, messages, UIDs and UIDVALIDITY; subscriptions of
// renamed names follow them. Renaming INBOX instead creates a new mailbox newName and moves all of
// INBOX's messages into it, leaving INBOX empty and its inferior names alone.
func (s *Store) RenameMailbox(ctx context.Context, oldName, newName string) error {
	oldName, err := NormalizeName(oldName)
	if err != nil {
		return ErrNoMailbox
	}
	newName, err = NormalizeName(newName)
	if err != nil {
		return err
	}
	return s.Update(ctx, func(tx *Tx) error {
		src, err := tx.mailboxByName(oldName)
		if err != nil {
			return err
		}
		if ok, err := tx.nameExists(newName); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%w: %q", ErrMailboxExists, newName)
		}
		if oldName == "INBOX" {
			if err := tx.createParents(newName); err != nil {
				return err
			}
			dst, err := tx.insertMailbox(newName, RoleNone)
			if err != nil {
				return err
			}
			_, err = tx.copyMessages(src.ID, nil, dst, true)
			return err
		}
		if strings.HasPrefix(newName, oldName+Delimiter) {
			return fmt.Errorf("%w: cannot rename %q into itself", ErrInvalidName, oldName)
		}
		type renamed struct {
			id       MailboxID
			from, to string
		}
		var todo []renamed
		rows, err := tx.query(`SELECT id, name FROM mailbox WHERE name = ? OR (name > ? AND name < ?)
			ORDER BY name`, oldName, oldName+"/", oldName+"0")
		if err != nil {
			return fmt.Errorf("store: rename: %w", err)
		}
		for rows.Next() {
			var r renamed
			if err := rows.Scan(&r.id, &r.from); err != nil {
				rows.Close()
				return fmt.Errorf("store: rename: %w", err)
			}
			r.to = newName + r.from[len(oldName):]
			todo = append(todo, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: rename: %w", err)
		}
		for _, r := range todo[1:] {
			if ok, err := tx.nameExists(r.to); err != nil {
				return err
			} else if ok {
				return fmt.Errorf("%w: %q", ErrMailboxExists, r.to)
			}
		}
		if err := tx.createParents(newName); err != nil {
			return err
		}
		ms, err := tx.nextModSeq()
		if err != nil {
			return err
		}
		for _, r := range todo {
			if _, err := tx.exec(`UPDATE mailbox SET name = ? WHERE id = ?`, r.to, r.id); err != nil {
				return fmt.Errorf("store: rename: %w", err)
			}
			res, err := tx.exec(`DELETE FROM subscription WHERE name = ?`, r.from)
			if err != nil {
				return fmt.Errorf("store: rename: %w", err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				if _, err := tx.exec(`INSERT OR IGNORE INTO subscription (name) VALUES (?)`, r.to); err != nil {
					return fmt.Errorf("store: rename: %w", err)
				}
			}
			tx.emit(ChangeMailboxRename{MailboxID: r.id, OldName: r.from, NewName: r.to, ModSeq: ms})
		}
		return nil
	})
}

// DeleteMailbox deletes a mailbox and its messages (RFC 3501 §6.3.4). Its inferior names and its
// subscription stay. Mailboxes with a role (INBOX, Sent, …, Chats) cannot be deleted (ErrProtected).
func (s *Store) DeleteMailbox(ctx context.Context, name string) error {
	name, err := NormalizeName(name)
	if err != nil {
		return ErrNoMailbox
	}
	return s.Update(ctx, func(tx *Tx) error {
		m, err := tx.mailboxByName(name)
		if err != nil {
			return err
		}
		if m.Role != RoleNone {
			return fmt.Errorf("%w: %q is the %s mailbox", ErrProtected, name, m.Role)
		}
		rows, err := tx.query(`SELECT DISTINCT body_id FROM message WHERE mailbox_id = ? AND body_id IS NOT NULL`, m.ID)
		if err != nil {
			return fmt.Errorf("store: delete mailbox: %w", err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("store: delete mailbox: %w", err)
			}
			tx.maybeOrphaned(id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: delete mailbox: %w", err)
		}
		ms, err := tx.nextModSeq()
		if err != nil {
			return err
		}
		if _, err := tx.exec(`DELETE FROM message WHERE mailbox_id = ?`, m.ID); err != nil {
			return fmt.Errorf("store: delete mailbox: %w", err)
		}
		if _, err := tx.exec(`DELETE FROM mailbox WHERE id = ?`, m.ID); err != nil {
			return fmt.Errorf("store: delete mailbox: %w", err)
		}
		tx.emit(ChangeMailboxDelete{MailboxID: m.ID, Name: name, ModSeq: ms})
		return nil
	})
}

// SetSubscribed subscribes or unsubscribes a name. The name need not exist (RFC 3501 §6.3.6).
func (s *Store) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	name, err := NormalizeName(name)
	if err != nil {
		return err
	}
	return s.Update(ctx, func(tx *Tx) error { return tx.setSubscribed(name, subscribed) })
}

func (tx *Tx) setSubscribed(name string, on bool) error {
	var res sql.Result
	var err error
	if on {
		res, err = tx.exec(`INSERT OR IGNORE INTO subscription (name) VALUES (?)`, name)
	} else {
		res, err = tx.exec(`DELETE FROM subscription WHERE name = ?`, name)
	}
	if err != nil {
		return fmt.Errorf("store: subscription: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return err
	}
	tx.emit(ChangeSubscription{Name: name, Subscribed: on, ModSeq: ms})
	return nil
}

// Subscriptions lists the subscribed names, sorted; some may not exist as mailboxes.
func (s *Store) Subscriptions(ctx context.Context) ([]string, error) {
	var out []string
	err := s.read(ctx, func(tx cachedTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM subscription ORDER BY name`)
		if err != nil {
			return fmt.Errorf("store: subscriptions: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return err
			}
			out = append(out, n)
		}
		return rows.Err()
	})
	return out, err
}

// mergeKeywords adds kw to the mailbox's keyword list, broadcasting the new list if it grew.
func (tx *Tx) mergeKeywords(mailboxID MailboxID, kw []string) error {
	if len(kw) == 0 {
		return nil
	}
	var cur string
	if err := tx.queryRow(`SELECT keywords FROM mailbox WHERE id = ?`, mailboxID).Scan(&cur); err != nil {
		return fmt.Errorf("store: keywords: %w", err)
	}
	old := parseKeywordsColumn(cur)
	merged := normKeywords(append(append([]string(nil), old...), kw...))
	if len(merged) == len(old) {
		return nil
	}
	if _, err := tx.exec(`UPDATE mailbox SET keywords = ? WHERE id = ?`, keywordsColumn(merged), mailboxID); err != nil {
		return fmt.Errorf("store: keywords: %w", err)
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return err
	}
	tx.emit(ChangeMailboxKeywords{MailboxID: mailboxID, Keywords: merged, ModSeq: ms})
	return nil
}
