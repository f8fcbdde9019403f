package chat

import (
	"errors"

	"github.com/tanglemail/tanglemail/internal/api"
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

// Member, Conversation and Message are the chat's values as the user (and the HTTP API, whose package
// defines them once) sees them: a conversation member; a 1:1 chat or a group (ID: 32 hex digits,
// protocol.md §10.3; Kind: KindDirect or KindGroup); one entry of a conversation's history, a text or an
// event (membership change), in the Chats mailbox.
type (
	Member       = api.Member
	Conversation = api.Conversation
	Message      = api.ChatMessage
)

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
