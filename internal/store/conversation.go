package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrNoConversation is returned for a conversation id the store does not know.
var ErrNoConversation = errors.New("store: no such conversation")

// ConversationID names a chat conversation: 32 hex digits (chat derives it, protocol.md §10.3).
type ConversationID string

// Conversation is a chat conversation as the store keeps it. The store does not interpret Peer or
// State; the chat layer does (protocol.md §10.3).
type Conversation struct {
	ID      ConversationID
	Kind    string // "direct" or "group"
	Peer    string // direct: the other party's address
	GroupID []byte // group: its id on the wire (protocol.md §10.3)
	Name    string // group: its name as last computed
	State   []byte // group: its state in wire form, nil while unknown
	Created time.Time
	Updated time.Time // last change or message
}

// ConversationChange is one membership change of a group, as received or sent.
type ConversationChange struct {
	Sent      time.Time
	AuthorKey []byte // Ed25519 public key: with Sent and MessageID, the order of protocol.md §10.3
	MessageID []byte
	Author    string // the author's address
	Content   []byte // the chat content (protocol.md §10.3)
}

// ConversationCounts are a conversation's message counts in a mailbox.
type ConversationCounts struct {
	Messages int
	Unseen   int
	LastUID  UID
}

const conversationCols = `id, kind, peer, group_id, name, state, created, updated`

func scanConversation(r scanner) (Conversation, error) {
	var c Conversation
	var created, updated int64
	err := r.Scan(&c.ID, &c.Kind, &c.Peer, &c.GroupID, &c.Name, &c.State, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, ErrNoConversation
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("store: conversation: %w", err)
	}
	c.Created, c.Updated = time.UnixMilli(created), time.UnixMilli(updated)
	return c, nil
}

// PutConversation creates or replaces a conversation and broadcasts ChangeConversation. Created is
// kept from an existing row; a zero Updated means now. A conversation never changes its kind.
func (tx *Tx) PutConversation(c Conversation) error {
	if c.ID == "" || (c.Kind != "direct" && c.Kind != "group") {
		return fmt.Errorf("store: put conversation: bad id %q or kind %q", c.ID, c.Kind)
	}
	if old, err := tx.Conversation(c.ID); err == nil && old.Kind != c.Kind {
		return fmt.Errorf("store: put conversation: %s is a %s conversation, not a %s one", c.ID, old.Kind, c.Kind)
	}
	now := tx.s.now()
	if c.Updated.IsZero() {
		c.Updated = now
	}
	_, err := tx.exec(`INSERT INTO conversation (id, kind, peer, group_id, name, state, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET peer = excluded.peer, group_id = excluded.group_id, name = excluded.name,
			state = excluded.state, updated = max(conversation.updated, excluded.updated)`,
		c.ID, c.Kind, c.Peer, nilIfEmpty(c.GroupID), c.Name, nilIfEmpty(c.State), now.UnixMilli(), c.Updated.UnixMilli())
	if err != nil {
		return fmt.Errorf("store: put conversation: %w", err)
	}
	ms, err := tx.nextModSeq()
	if err != nil {
		return err
	}
	tx.emit(ChangeConversation{ID: c.ID, ModSeq: ms})
	return nil
}

// TouchConversation moves a conversation's Updated time forward to t (a new message).
func (tx *Tx) TouchConversation(id ConversationID, t time.Time) error {
	_, err := tx.exec(`UPDATE conversation SET updated = max(updated, ?) WHERE id = ?`, t.UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("store: touch conversation: %w", err)
	}
	return nil
}

// Conversation returns a conversation within the transaction.
func (tx *Tx) Conversation(id ConversationID) (Conversation, error) {
	return scanConversation(tx.queryRow(`SELECT `+conversationCols+` FROM conversation WHERE id = ?`, id))
}

// Conversation returns a conversation, or ErrNoConversation.
func (s *Store) Conversation(ctx context.Context, id ConversationID) (Conversation, error) {
	var c Conversation
	err := s.read(ctx, func(tx cachedTx) (err error) {
		c, err = scanConversation(tx.QueryRowContext(ctx, `SELECT `+conversationCols+` FROM conversation WHERE id = ?`, id))
		return err
	})
	return c, err
}

// Conversations returns every conversation, most recently updated first.
func (s *Store) Conversations(ctx context.Context) ([]Conversation, error) {
	var out []Conversation
	err := s.read(ctx, func(tx cachedTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+conversationCols+` FROM conversation ORDER BY updated DESC, id`)
		if err != nil {
			return fmt.Errorf("store: conversations: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanConversation(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// AddConversationChange records a group's membership change; it reports false if the same change
// (conversation, sent time, author, message id) was recorded before.
func (tx *Tx) AddConversationChange(conv ConversationID, c ConversationChange) (bool, error) {
	res, err := tx.exec(`INSERT OR IGNORE INTO conversation_change
		(conversation_id, sent, author_key, message_id, author, content) VALUES (?, ?, ?, ?, ?, ?)`,
		conv, c.Sent.UnixMilli(), c.AuthorKey, c.MessageID, c.Author, c.Content)
	if err != nil {
		return false, fmt.Errorf("store: add conversation change: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ConversationChanges returns a group's recorded changes, in the order of protocol.md §10.3.
func (tx *Tx) ConversationChanges(conv ConversationID) ([]ConversationChange, error) {
	rows, err := tx.query(`SELECT sent, author_key, message_id, author, content FROM conversation_change
		WHERE conversation_id = ? ORDER BY sent, author_key, message_id`, conv)
	if err != nil {
		return nil, fmt.Errorf("store: conversation changes: %w", err)
	}
	defer rows.Close()
	var out []ConversationChange
	for rows.Next() {
		var c ConversationChange
		var sent int64
		if err := rows.Scan(&sent, &c.AuthorKey, &c.MessageID, &c.Author, &c.Content); err != nil {
			return nil, fmt.Errorf("store: conversation changes: %w", err)
		}
		c.Sent = time.UnixMilli(sent)
		out = append(out, c)
	}
	return out, rows.Err()
}

// ConversationCounts returns, per conversation id, the counts of its messages in a mailbox (Chats).
func (s *Store) ConversationCounts(ctx context.Context, mailboxID MailboxID) (map[ConversationID]ConversationCounts, error) {
	out := map[ConversationID]ConversationCounts{}
	err := s.read(ctx, func(tx cachedTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT conversation_id, count(*), sum((flags & 1) = 0), max(uid)
			FROM message WHERE mailbox_id = ? AND expunged = 0 AND conversation_id <> ''
			GROUP BY conversation_id`, mailboxID)
		if err != nil {
			return fmt.Errorf("store: conversation counts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id ConversationID
			var c ConversationCounts
			var last int64
			if err := rows.Scan(&id, &c.Messages, &c.Unseen, &last); err != nil {
				return fmt.Errorf("store: conversation counts: %w", err)
			}
			c.LastUID = UID(last)
			out[id] = c
		}
		return rows.Err()
	})
	return out, err
}

// ConversationUIDs returns the UIDs of a conversation's messages in a mailbox, ascending: the last
// limit of those below before (all if before is 0), and whether there are older ones.
func (s *Store) ConversationUIDs(ctx context.Context, mailboxID MailboxID, conv ConversationID, before UID, limit int) ([]UID, bool, error) {
	var out []UID
	more := false
	err := s.read(ctx, func(tx cachedTx) error {
		b := int64(before)
		if b == 0 {
			b = 1 << 40
		}
		rows, err := tx.QueryContext(ctx, `SELECT uid FROM message WHERE mailbox_id = ? AND conversation_id = ?
			AND expunged = 0 AND uid < ? ORDER BY uid DESC LIMIT ?`, mailboxID, conv, b, limit+1)
		if err != nil {
			return fmt.Errorf("store: conversation messages: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var uid int64
			if err := rows.Scan(&uid); err != nil {
				return fmt.Errorf("store: conversation messages: %w", err)
			}
			out = append(out, UID(uid))
		}
		return rows.Err()
	})
	if len(out) > limit {
		out, more = out[:limit], true
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, more, err
}

// UnseenMessage is a message without \Seen, with what a read receipt needs.
type UnseenMessage struct {
	UID            UID
	SenderVerified string
	EnvelopeKey    []byte
}

// ConversationUnseen returns a conversation's messages in a mailbox that lack \Seen, by UID.
func (s *Store) ConversationUnseen(ctx context.Context, mailboxID MailboxID, conv ConversationID) ([]UnseenMessage, error) {
	var out []UnseenMessage
	err := s.read(ctx, func(tx cachedTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT uid, sender_verified, envelope_key FROM message
			WHERE mailbox_id = ? AND conversation_id = ? AND expunged = 0 AND (flags & 1) = 0 ORDER BY uid`,
			mailboxID, conv)
		if err != nil {
			return fmt.Errorf("store: unseen: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var m UnseenMessage
			var uid int64
			if err := rows.Scan(&uid, &m.SenderVerified, &m.EnvelopeKey); err != nil {
				return fmt.Errorf("store: unseen: %w", err)
			}
			m.UID = UID(uid)
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}
