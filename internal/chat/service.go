package chat

import (
	"errors"
	"time"

	"github.com/tanglemail/tanglemail/internal/store"
)

// Conversation kinds.
const (
	KindDirect = "direct" // 1:1
	KindGroup  = "group"
)

// Message statuses of the user's own messages (Message.Status). Received messages have "".
const (
	StatusSending   = "sending"   // in the outbox, not yet published to every recipient
	StatusSent      = "sent"      // published to every recipient, no receipt from some yet
	StatusDelivered = "delivered" // every recipient's node filed it
	StatusRead      = "read"      // every recipient read it
	StatusFailed    = "failed"    // some recipient could not be reached in time (a bounce is in INBOX)
)

// Member is a conversation member.
type Member struct {
	Address string `json:"address"`        // tm1…@tangle
	Name    string `json:"name,omitempty"` // the user's petname for it, if any
	Me      bool   `json:"me,omitempty"`   // the node's own identity
}

// Conversation is a 1:1 chat or a group, as the user sees it.
type Conversation struct {
	ID      string    `json:"id"`   // 32 hex digits (protocol.md §10.3)
	Kind    string    `json:"kind"` // KindDirect or KindGroup
	Name    string    `json:"name"` // group name; for 1:1 the peer's petname or address
	Peer    string    `json:"peer,omitempty"`
	Members []Member  `json:"members"` // including the user (Me); empty for a group the user left
	Left    bool      `json:"left,omitempty"`
	Unread  int       `json:"unread"`
	Last    *Message  `json:"last,omitempty"`
	Updated time.Time `json:"updated"`
}

// Message is one entry of a conversation's history: a text, or an event (membership change).
type Message struct {
	ID           string    `json:"id"` // 32 hex digits, the same on every member's node
	Conversation string    `json:"conversation"`
	UID          store.UID `json:"uid"`  // in the Chats mailbox
	Kind         string    `json:"kind"` // "text" or "event"
	From         Member    `json:"from"`
	Mine         bool      `json:"mine"`
	Text         string    `json:"text"` // for an event, a sentence describing it
	Sent         time.Time `json:"sent"`
	Seen         bool      `json:"seen"`
	Status       string    `json:"status,omitempty"` // own messages only
}

// Event is pushed to subscribers (Service.Subscribe).
type Event struct {
	Type         string        `json:"type"` // "message", "status", "typing", "conversation"
	Conversation string        `json:"conversation"`
	Message      *Message      `json:"message,omitempty"` // message, status
	From         *Member       `json:"from,omitempty"`    // typing
	Info         *Conversation `json:"info,omitempty"`    // conversation (membership, name, unread)
}

// Errors of the Service; the API maps ErrNotFound to 404 and ErrInvalid to 400. Both are wrapped with
// a sentence that says what is wrong.
var (
	ErrNotFound  = errors.New("no such conversation")
	ErrInvalid   = errors.New("invalid request")
	ErrNotMember = errors.New("not a member of this group")
)

// Service method set (what the front doors use):
//
//	Conversations(ctx) ([]Conversation, error)                     newest first
//	Conversation(ctx, id) (Conversation, error)                    ErrNotFound
//	Direct(ctx, peer) (Conversation, error)                        peer: petname or address; made on first use
//	CreateGroup(ctx, name, members []string) (Conversation, error) members: petnames or addresses, without the user
//	AddMember(ctx, id, member) error / RemoveMember(ctx, id, member) error / Leave(ctx, id) error / Rename(ctx, id, name) error
//	Send(ctx, id, text) (Message, error)                           durable when it returns nil
//	History(ctx, id, before store.UID, limit int) ([]Message, error) oldest first; before 0 = the newest
//	MarkRead(ctx, id) error                                        \Seen, and read receipts to the senders
//	Typing(ctx, id) error                                          a typing notice to the members (rate-limited)
//	Subscribe(ctx) <-chan Event                                    closed when ctx ends
