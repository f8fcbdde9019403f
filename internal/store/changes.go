package store

import "sync"

// Change is one committed change, broadcast to listeners after its transaction commits. The concrete
// types are the Change* structs of this package. Values (and the slices inside them) are shared by all
// listeners: treat them as read-only.
type Change interface {
	// ChangeModSeq is the modseq of the transaction that made the change.
	ChangeModSeq() uint64
}

// ChangeAdd: a message was added to a mailbox (append, delivery, copy, move).
type ChangeAdd struct {
	MailboxID MailboxID
	UID       UID
	ModSeq    uint64
	Flags     Flags
	Size      int64
}

// ChangeFlags: a message's flags changed.
type ChangeFlags struct {
	MailboxID MailboxID
	UID       UID
	ModSeq    uint64
	Flags     Flags
}

// ChangeExpunge: messages were expunged (or moved away) from a mailbox. UIDs are ascending.
type ChangeExpunge struct {
	MailboxID MailboxID
	UIDs      []UID
	ModSeq    uint64
}

// ChangeMailboxKeywords: the set of keywords used in a mailbox grew (the IMAP FLAGS response).
type ChangeMailboxKeywords struct {
	MailboxID MailboxID
	Keywords  []string
	ModSeq    uint64
}

// ChangeMailboxAdd: a mailbox was created.
type ChangeMailboxAdd struct {
	MailboxID  MailboxID
	Name       string
	SpecialUse string
	ModSeq     uint64
}

// ChangeMailboxRename: a mailbox was renamed (a rename of a parent sends one per renamed child too).
type ChangeMailboxRename struct {
	MailboxID MailboxID
	OldName   string
	NewName   string
	ModSeq    uint64
}

// ChangeMailboxDelete: a mailbox and its messages were deleted.
type ChangeMailboxDelete struct {
	MailboxID MailboxID
	Name      string
	ModSeq    uint64
}

// ChangeSubscription: a name was subscribed or unsubscribed.
type ChangeSubscription struct {
	Name       string
	Subscribed bool
	ModSeq     uint64
}

// ChangeOutbox: an outbox recipient was enqueued or changed state, or (Read) a read receipt arrived.
// SentMailboxID and SentUID name the item's sent copy (Submit), zero if it has none, so that a listener
// interested in some mailbox only (chat: its chats mailbox) need not read the item.
type ChangeOutbox struct {
	OutboxID      OutboxID
	Rcpt          string
	State         RcptState
	ModSeq        uint64
	Read          bool
	SentMailboxID MailboxID
	SentUID       UID
}

// ChangeConversation: a chat conversation was created or changed (name, members).
type ChangeConversation struct {
	ID     ConversationID
	ModSeq uint64
}

func (c ChangeAdd) ChangeModSeq() uint64             { return c.ModSeq }
func (c ChangeFlags) ChangeModSeq() uint64           { return c.ModSeq }
func (c ChangeExpunge) ChangeModSeq() uint64         { return c.ModSeq }
func (c ChangeMailboxKeywords) ChangeModSeq() uint64 { return c.ModSeq }
func (c ChangeMailboxAdd) ChangeModSeq() uint64      { return c.ModSeq }
func (c ChangeMailboxRename) ChangeModSeq() uint64   { return c.ModSeq }
func (c ChangeMailboxDelete) ChangeModSeq() uint64   { return c.ModSeq }
func (c ChangeSubscription) ChangeModSeq() uint64    { return c.ModSeq }
func (c ChangeOutbox) ChangeModSeq() uint64          { return c.ModSeq }
func (c ChangeConversation) ChangeModSeq() uint64    { return c.ModSeq }

// bus fans committed changes out to listeners. broadcast is called by the writer, under the writer
// lock, after commit; it never blocks on a listener.
type bus struct {
	mu        sync.Mutex
	limit     int
	listeners map[*Listener]struct{}
}

// Listener receives the account's changes in commit order. Wait on Ready, then call Take.
type Listener struct {
	bus   *bus
	ready chan struct{}

	mu       sync.Mutex
	pending  []Change
	overflow bool
}

// Subscribe registers a new listener. It receives every change committed after Subscribe returns.
// Close it when done.
func (s *Store) Subscribe() *Listener {
	l := &Listener{bus: &s.bus, ready: make(chan struct{}, 1)}
	s.bus.mu.Lock()
	if s.bus.listeners == nil {
		s.bus.listeners = map[*Listener]struct{}{}
	}
	s.bus.listeners[l] = struct{}{}
	s.bus.mu.Unlock()
	return l
}

// Ready returns a channel that receives a value when changes (or an overflow) are pending. One value
// may stand for many changes, and a value may arrive for changes an earlier Take already returned (then
// Take returns none): after it fires, Take everything.
func (l *Listener) Ready() <-chan struct{} { return l.ready }

// Take returns the pending changes, oldest first, and clears them. If overflow is true, changes were
// dropped because the listener fell more than the store's change limit behind: changes is nil, and the
// listener must resync from a fresh snapshot (List, Mailboxes…), then ignore later changes whose
// ModSeq is not above that snapshot's. Take never blocks on the writer.
func (l *Listener) Take() (changes []Change, overflow bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.overflow {
		l.overflow = false
		l.pending = nil
		return nil, true
	}
	changes, l.pending = l.pending, nil
	return changes, false
}

// Close unregisters the listener.
func (l *Listener) Close() {
	l.bus.mu.Lock()
	delete(l.bus.listeners, l)
	l.bus.mu.Unlock()
}

func (b *bus) broadcast(changes []Change) {
	if len(changes) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for l := range b.listeners {
		l.mu.Lock()
		if !l.overflow {
			if len(l.pending)+len(changes) > b.limit {
				l.overflow = true
				l.pending = nil
			} else {
				l.pending = append(l.pending, changes...)
			}
		}
		l.mu.Unlock()
		select {
		case l.ready <- struct{}{}:
		default:
		}
	}
}
