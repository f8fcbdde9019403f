// Package api is the JSON shapes of the HTTP API, docs/api.md: the one Go definition of every request
// body, answer and event-stream datum, used by the server (internal/web), the CLI (cmd/tanglemail) and
// the browser tests' stub API (test/browser). It holds types only, no behaviour.
//
// Notes:
//   - Field names are docs/api.md's, in snake_case. A change of a JSON name here is a change of the API:
//     docs/api.md lists it, and the web client (internal/web/ui) follows.
//   - Lists in answers are never null: the server sends [] for an empty list.
//   - Request bodies use pointers where the server must tell a missing field from an empty one.
//   - The network part of the status document is internal/p2p's Status, which marshals as is; this
//     package names it, so that the status has one definition too.
package api

import (
	"time"

	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/version"
)

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Error string `json:"error"`
}

// Login is the body of POST /api/login as a client sends it: the node's password.
type Login struct {
	Password string `json:"password"`
}

// LoginRequest is the body of POST /api/login as the server reads it: Login, with a missing password
// (400: the body has the wrong shape) told from a wrong or empty one (401).
type LoginRequest struct {
	Password *string `json:"password"`
}

// Me is GET /api/me, and the data of the event stream's hello event.
type Me struct {
	Address string `json:"address"`
}

// Status is GET /api/status (and `tanglemail status --json`).
type Status struct {
	Address string          `json:"address"`
	Network string          `json:"network"`
	Mode    string          `json:"mode"`              // "full", or "light" (a light client: no Tangle, storage providers)
	Storage []LightProvider `json:"storage,omitempty"` // the node's storage subscriptions (light client, or a full node's cover)
	Version version.Info    `json:"version"`           // the build, with the protocol version
	Uptime  string          `json:"uptime"`
	API     string          `json:"api"`
	P2P     p2p.Status      `json:"p2p"`
	Outbox  OutboxStatus    `json:"outbox"`
	Blobs   *BlobStatus     `json:"blobs,omitempty"` // sealed blobs and transfers (a full node)
	Wallet  Wallet          `json:"wallet"`          // the payment wallet's balance
}

// Peer is one connected peer, an element of GET /api/peers's list.
type Peer = p2p.PeerStatus

// OutboxStatus is what the outbox is doing: the proofs of work being ground now, and its counters.
type OutboxStatus struct {
	WaitingForPeers bool          `json:"waiting_for_peers"`
	Jobs            []ProgressJob `json:"jobs"`
	QueuedReceipts  int           `json:"queued_receipts"`
	Stats           OutboxStats   `json:"stats"`
}

// OutboxStats are the outbox's counters since the node started.
type OutboxStats struct {
	Sealed          uint64 `json:"sealed"`            // recipients sealed
	Published       uint64 `json:"published"`         // blocks published (mail, chat, chunks)
	Republished     uint64 `json:"republished"`       // recipients published again for want of a receipt
	PublishErrors   uint64 `json:"publish_errors"`    // failed publish attempts (retried)
	Delivered       uint64 `json:"delivered"`         // recipients moved to delivered by a receipt
	Delayed         uint64 `json:"delayed"`           // recipients past their TTL without a receipt, in the grace period
	Failed          uint64 `json:"failed"`            // recipients given up (each with a bounce)
	ReceiptsSent    uint64 `json:"receipts_sent"`     // receipt envelopes published
	ReceiptKeysSent uint64 `json:"receipt_keys_sent"` // keys acknowledged in them
	ReceiptsDropped uint64 `json:"receipts_dropped"`  // receipt keys dropped because the queue was full
	ReceiptsIgnored uint64 `json:"receipts_ignored"`  // received keys that named nothing of ours
	NotesSent       uint64 `json:"notes_sent"`        // typing and read notices published
}

// Progress is the data of the event stream's progress event: the proofs of work being ground now.
type Progress struct {
	Jobs            []ProgressJob `json:"jobs"`
	WaitingForPeers bool          `json:"waiting_for_peers"`
}

// ProgressJob is one block whose proof of work is being ground: the one PoW-progress shape, in the
// progress event and in the status's outbox.jobs.
type ProgressJob struct {
	OutboxID  int64     `json:"outbox_id"` // 0 for a receipt
	Recipient string    `json:"recipient"` // as submitted; for a receipt, the address it goes to
	Kind      string    `json:"kind"`      // mail, chat, receipt, chunk, …
	Block     int       `json:"block"`     // 1-based, of Blocks
	Blocks    int       `json:"blocks"`    // blocks of this recipient's message
	Done      uint64    `json:"hashes_done"`
	Expected  uint64    `json:"hashes_expected"` // 0 when proof of work is off
	Started   time.Time `json:"started"`
	Finished  bool      `json:"finished"` // the job ended (published or not)
}

// Folder is a mail folder, an element of Folders.
type Folder struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Role     string `json:"role"`
	Messages uint32 `json:"messages"`
	Unseen   uint32 `json:"unseen"`
}

// Folders is GET /api/folders, and the data of the event stream's folders event.
type Folders struct {
	Folders []Folder `json:"folders"`
}

// Person is an address with the name the user knows it by (the petname, else the display name of
// the header).
type Person struct {
	Address string `json:"address"`
	Name    string `json:"name"`
}

// Message is a mail message in a listing.
type Message struct {
	UID       store.UID `json:"uid"`
	Folder    int64     `json:"folder"`
	From      Person    `json:"from"`
	To        []Person  `json:"to"`
	Subject   string    `json:"subject"`
	Date      time.Time `json:"date"`
	Size      int64     `json:"size"`
	Flags     []string  `json:"flags"`
	Seen      bool      `json:"seen"`
	Flagged   bool      `json:"flagged"`
	Delivered bool      `json:"delivered"`
	Preview   string    `json:"preview"`
}

// Messages is GET /api/folders/{id}/messages: newest first.
type Messages struct {
	Messages []Message `json:"messages"`
	More     bool      `json:"more"`
}

// MessageDetail is GET /api/folders/{id}/messages/{uid}: one message with its text.
type MessageDetail struct {
	Message
	Cc             []Person `json:"cc"`
	Bcc            []Person `json:"bcc"` // only in the sender's own copy (Sent); [] in what recipients get
	Text           string   `json:"text"`
	HasHTML        bool     `json:"has_html"`
	SenderVerified string   `json:"sender_verified"`
	// E2E is "openpgp" when the node decrypted the message with the user's OpenPGP key before filing it
	// (its X-Tanglemail-E2E field, docs/protocol.md §16.2), else empty; E2ESignature is that field's
	// signature value: "none", "good", "bad" or "unknown-key". On a Sent copy marked $E2E (the node
	// encrypted the mail for its Internet recipients before it left) they are "openpgp" and "sent".
	E2E          string       `json:"e2e"`
	E2ESignature string       `json:"e2e_signature"`
	Attachments  []Attachment `json:"attachments"`
}

// Attachment is one attachment of a message; GET …/attachments/{n} serves the n-th.
type Attachment struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// FlagChange is the body of POST …/flags.
type FlagChange struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
}

// Flags answers POST …/flags: the message's flags now.
type Flags struct {
	Flags []string `json:"flags"`
}

// Move is the body of POST …/move.
type Move struct {
	To *int64 `json:"to"`
}

// Moved answers POST …/move: where the message is now.
type Moved struct {
	Folder int64     `json:"folder"`
	UID    store.UID `json:"uid"`
}

// Compose is the body of POST /api/messages as JSON (docs/api.md, "Sending mail"); with attachments
// the request is multipart/form-data with this JSON in the part "message" and one part "attachment"
// per file.
type Compose struct {
	To        []string `json:"to"`
	Cc        []string `json:"cc"`
	Bcc       []string `json:"bcc"` // blind copies: kept in the Sent copy only
	Subject   string   `json:"subject"`
	Text      string   `json:"text"`
	InReplyTo string   `json:"in_reply_to"`
}

// Sent answers POST /api/messages: the outbox item and the Sent copy.
type Sent struct {
	OutboxID int64     `json:"outbox_id"`
	Folder   int64     `json:"folder"`
	UID      store.UID `json:"uid"`
}

// OutboxItems is GET /api/outbox: newest first.
type OutboxItems struct {
	Items []OutboxItem `json:"items"`
}

// OutboxItem is one message in the outbox with its recipients' states.
type OutboxItem struct {
	ID         int64             `json:"id"`
	Created    time.Time         `json:"created"`
	Subject    string            `json:"subject"`
	Recipients []OutboxRecipient `json:"recipients"`
}

// OutboxRecipient is one recipient of an outbox item.
type OutboxRecipient struct {
	Address string `json:"address"`
	State   string `json:"state"`
	Error   string `json:"error"`
}

// Contact is an address-book entry: an element of Contacts, and the answer of POST /api/contacts. A
// client sends it as that request's body too; the server reads the body as AddContact.
type Contact struct {
	Petname string `json:"petname"`
	Address string `json:"address"`
}

// AddContact is the body of POST /api/contacts as the server reads it: Contact, with missing fields
// told from empty ones.
type AddContact struct {
	Petname *string `json:"petname"`
	Address *string `json:"address"`
}

// Contacts is GET /api/contacts, sorted by petname.
type Contacts struct {
	Contacts []Contact `json:"contacts"`
}

// Member is a member of a conversation, or the sender of a chat message.
type Member struct {
	Address string `json:"address"`        // tm1…@tangle
	Name    string `json:"name,omitempty"` // the user's petname for it, if any
	Me      bool   `json:"me,omitempty"`   // the node's own identity
}

// Conversation is a 1:1 chat or a group.
type Conversation struct {
	ID      string       `json:"id"`   // 32 lower-case hex digits
	Kind    string       `json:"kind"` // "direct" or "group"
	Name    string       `json:"name"` // group name; for 1:1 the peer's petname or address
	Peer    string       `json:"peer,omitempty"`
	Members []Member     `json:"members"` // including the user (Me); empty for a group the user left
	Left    bool         `json:"left,omitempty"`
	Unread  int          `json:"unread"`
	Last    *ChatMessage `json:"last,omitempty"`
	Updated time.Time    `json:"updated"`
}

// Conversations is GET /api/conversations, most recently active first.
type Conversations struct {
	Conversations []Conversation `json:"conversations"`
}

// ChatMessage is one message of a conversation.
type ChatMessage struct {
	ID           string    `json:"id"` // 32 hex digits, the same on every member's node
	Conversation string    `json:"conversation"`
	UID          store.UID `json:"uid"`  // in the Chats folder
	Kind         string    `json:"kind"` // "text" or "event"
	From         Member    `json:"from"`
	Mine         bool      `json:"mine"`
	Text         string    `json:"text"` // for an event, a sentence describing it
	Sent         time.Time `json:"sent"`
	Seen         bool      `json:"seen"`
	Status       string    `json:"status,omitempty"` // own messages only: sending, sent, delivered, read, failed
}

// ChatHistory is GET /api/conversations/{id}/messages: oldest first.
type ChatHistory struct {
	Messages []ChatMessage `json:"messages"`
	More     bool          `json:"more"`
}

// NewConversation is the body of POST /api/conversations: Peer for a 1:1 conversation, or Name and
// Members for a group.
type NewConversation struct {
	Peer    *string  `json:"peer,omitempty"`
	Name    *string  `json:"name,omitempty"`
	Members []string `json:"members,omitempty"`
}

// Rename is the body of PATCH /api/conversations/{id}.
type Rename struct {
	Name *string `json:"name"`
}

// AddMember is the body of POST /api/conversations/{id}/members.
type AddMember struct {
	Member *string `json:"member"`
}

// ChatText is the body of POST /api/conversations/{id}/messages.
type ChatText struct {
	Text *string `json:"text"`
}

// MailEvent is the data of the event stream's mail event: a message arrived in a folder.
type MailEvent struct {
	Folder int64     `json:"folder"`
	UID    store.UID `json:"uid"`
}

// ChatEvent is the data of the event stream's chat, receipt, typing and conversation events; each
// sets Conversation and one of the others.
type ChatEvent struct {
	Conversation string        `json:"conversation"`
	Message      *ChatMessage  `json:"message,omitempty"` // chat, receipt
	From         *Member       `json:"from,omitempty"`    // typing
	Info         *Conversation `json:"info,omitempty"`    // conversation
}

// Resync is the data of the event stream's resync event: reload, events were missed.
type Resync struct{}
