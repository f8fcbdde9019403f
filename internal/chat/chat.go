package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Notes is what the service needs of the outbox: SendNote publishes a typing or read notice at once
// (*outbox.Outbox implements it). Texts and changes go through the store's outbox instead.
type Notes interface {
	SendNote(ctx context.Context, to identity.Address, content []byte, ttl uint32) error
}

// Config configures New. Store, Identity, Params and Notes are required.
type Config struct {
	Store    *store.Store
	Identity *identity.Identity
	Params   tangle.Params
	Notes    Notes
	Clock    func() time.Time // default time.Now
	Logger   *slog.Logger     // default: discard
}

// Typing notices: at most one per conversation every typingInterval, in blocks of the minimum TTL.
const (
	typingInterval = 3 * time.Second
	subscriberBuf  = 256
)

// Service is the chat view of the store: it sends texts and membership changes through the outbox,
// files what arrives (HandleChat, called by the inbox), answers the front doors' questions about
// conversations and pushes events to subscribers. Run must be running for events.
type Service struct {
	st      *store.Store
	id      *identity.Identity
	me      identity.Address
	params  tangle.Params
	notes   Notes
	now     func() time.Time
	log     *slog.Logger
	panics  atomic.Uint64 // recovered in Run (package supervise)
	chatsID store.MailboxID

	mu     sync.Mutex
	closed bool // Run has returned: no more notices
	subs   map[*subscriber]struct{}
	typing map[ID]time.Time // last typing notice sent per conversation

	wg     sync.WaitGroup  // notices being sent
	ctx    context.Context // ends when Run returns: notices in flight are abandoned
	cancel context.CancelFunc
}

type subscriber struct {
	ch       chan Event
	overflow bool
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Identity == nil || cfg.Notes == nil || cfg.Params.Name == "" {
		return nil, errors.New("chat: Store, Identity, Params and Notes are required")
	}
	s := &Service{st: cfg.Store, id: cfg.Identity, me: cfg.Identity.Address(), params: cfg.Params, notes: cfg.Notes,
		now: cfg.Clock, log: cfg.Logger, subs: map[*subscriber]struct{}{}, typing: map[ID]time.Time{}}
	if s.now == nil {
		s.now = time.Now
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	mb, err := cfg.Store.MailboxByRole(context.Background(), store.RoleChats)
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	s.chatsID = mb.ID
	return s, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// resolve turns a petname or an address into an address.
func (s *Service) resolve(ctx context.Context, who string) (identity.Address, error) {
	who = strings.TrimSpace(who)
	if who == "" {
		return identity.Address{}, invalid("empty petname or address")
	}
	if strings.HasPrefix(strings.ToLower(who), "tm1") {
		a, err := mail.ParseRecipient(who)
		if err != nil {
			return identity.Address{}, invalid("%q is not a tanglemail address: %v", who, err)
		}
		return a, nil
	}
	c, err := s.st.Contact(ctx, who)
	if errors.Is(err, store.ErrNoContact) {
		return identity.Address{}, invalid("no contact named %q: add it first, or give the address", who)
	}
	if err != nil {
		return identity.Address{}, err
	}
	a, err := mail.ParseRecipient(c.Address)
	if err != nil {
		return identity.Address{}, invalid("contact %q has an invalid address: %v", who, err)
	}
	return a, nil
}

// Direct returns the 1:1 conversation with peer (a petname or an address), making it on first use.
func (s *Service) Direct(ctx context.Context, peer string) (Conversation, error) {
	a, err := s.resolve(ctx, peer)
	if err != nil {
		return Conversation{}, err
	}
	if a.Equal(s.me) {
		return Conversation{}, invalid("that is your own address")
	}
	id := DirectID(s.me.Key, a.Key)
	err = s.st.Update(ctx, func(tx *store.Tx) error { return s.ensureDirect(tx, id, a) })
	if err != nil {
		return Conversation{}, err
	}
	return s.Conversation(ctx, id.String())
}

func (s *Service) ensureDirect(tx *store.Tx, id ID, peer identity.Address) error {
	if _, err := tx.Conversation(convID(id)); err == nil || !errors.Is(err, store.ErrNoConversation) {
		return err // PutConversation keeps kinds apart; GroupConversationID keeps ids apart
	}
	return tx.PutConversation(store.Conversation{ID: convID(id), Kind: KindDirect, Peer: peer.Mail()})
}

// CreateGroup makes a group with the user and members (petnames or addresses) and sends its create
// change to them.
func (s *Service) CreateGroup(ctx context.Context, name string, members []string) (Conversation, error) {
	name = strings.TrimSpace(name)
	if err := CheckName(name); err != nil {
		return Conversation{}, err
	}
	state := &State{Name: name, Members: []identity.Address{s.me}}
	for _, m := range members {
		a, err := s.resolve(ctx, m)
		if err != nil {
			return Conversation{}, err
		}
		if !state.Has(a) {
			state.Members = append(state.Members, a)
		}
	}
	if len(state.Members) < 2 {
		return Conversation{}, invalid("a group needs at least one member besides you")
	}
	if len(state.Members) > MaxMembers {
		return Conversation{}, invalid("a group has at most %d members, you included", MaxMembers)
	}
	gid := NewID()
	c := &Content{Type: TypeCreate, Conversation: gid, Message: NewID(), State: state}
	if err := s.change(ctx, c, true); err != nil {
		return Conversation{}, err
	}
	id := GroupConversationID(gid).String()
	conv, err := s.Conversation(ctx, id)
	if err != nil {
		// The group is on disk and its create in the outbox: say so, rather than invite a second one.
		s.log.Warn("chat: reading back a new group", "err", err)
		conv = Conversation{ID: id, Kind: KindGroup, Name: name, Members: []Member{}, Updated: s.now()}
		for _, m := range state.Members {
			conv.Members = append(conv.Members, s.member(m.Mail(), nil))
		}
	}
	return conv, nil
}

// groupMember returns group id's id and state and member (a petname or an address) resolved.
func (s *Service) groupMember(ctx context.Context, id, member string) (ID, *State, identity.Address, error) {
	gid, st, err := s.group(ctx, id)
	if err != nil {
		return gid, nil, identity.Address{}, err
	}
	a, err := s.resolve(ctx, member)
	return gid, st, a, err
}

// AddMember adds a member (petname or address) to a group.
func (s *Service) AddMember(ctx context.Context, id, member string) error {
	gid, st, a, err := s.groupMember(ctx, id, member)
	if err != nil {
		return err
	}
	if st.Has(a) {
		return invalid("%s is already a member", member)
	}
	if len(st.Members) >= MaxMembers {
		return invalid("the group has %d members already", MaxMembers)
	}
	after := &State{Name: st.Name, Members: append(st.Members, a)}
	return s.change(ctx, &Content{Type: TypeAdd, Conversation: gid, Message: NewID(), Member: a, State: after}, false)
}

// RemoveMember removes a member (petname or address) from a group.
func (s *Service) RemoveMember(ctx context.Context, id, member string) error {
	gid, st, a, err := s.groupMember(ctx, id, member)
	if err != nil {
		return err
	}
	if !st.Has(a) {
		return invalid("%s is not a member", member)
	}
	if a.Equal(s.me) {
		return invalid("to remove yourself, leave the group")
	}
	return s.change(ctx, &Content{Type: TypeRemove, Conversation: gid, Message: NewID(), Member: a}, false)
}

// Leave leaves a group.
func (s *Service) Leave(ctx context.Context, id string) error {
	gid, _, err := s.group(ctx, id)
	if err != nil {
		return err
	}
	return s.change(ctx, &Content{Type: TypeLeave, Conversation: gid, Message: NewID()}, false)
}

// Rename renames a group.
func (s *Service) Rename(ctx context.Context, id, name string) error {
	name = strings.TrimSpace(name)
	if err := CheckName(name); err != nil {
		return err
	}
	gid, _, err := s.group(ctx, id)
	if err != nil {
		return err
	}
	return s.change(ctx, &Content{Type: TypeRename, Conversation: gid, Message: NewID(), Name: name}, false)
}

// group returns the wire id and state of a group the user is a member of.
func (s *Service) group(ctx context.Context, id string) (ID, *State, error) {
	_, c, err := s.row(ctx, id)
	if err != nil {
		return ID{}, nil, err
	}
	if c.Kind != KindGroup || len(c.GroupID) != IDSize {
		return ID{}, nil, invalid("conversation %s is not a group", id)
	}
	gid := ID(c.GroupID)
	st, err := DecodeState(c.State)
	if err != nil {
		return gid, nil, err
	}
	if st == nil || !st.Has(s.me) {
		return gid, nil, fmt.Errorf("%w: you are not (or no longer) in this group", ErrNotMember)
	}
	return gid, st, nil
}

// change records one of the user's membership changes, recomputes the group's state, files the change
// in Chats and submits it to the members of the new state (and a removed member), in one transaction.
func (s *Service) change(ctx context.Context, c *Content, create bool) error {
	content, err := c.Encode()
	if err != nil {
		return err
	}
	now := s.now().Truncate(time.Millisecond)
	return s.st.Update(ctx, func(tx *store.Tx) error {
		conv := GroupConversationID(c.Conversation).String()
		if !create {
			// Re-check membership inside the transaction: a change may have arrived meanwhile.
			if st, err := s.foldTx(tx, conv); err != nil {
				return err
			} else if st == nil || !st.Has(s.me) {
				return fmt.Errorf("%w: you are not (or no longer) in this group", ErrNotMember)
			}
		}
		st, err := s.recordChange(tx, c, content, s.me, now)
		if err != nil {
			return err
		}
		if st == nil {
			st = &State{}
		}
		var rcpts []string
		for _, m := range st.Members {
			if !m.Equal(s.me) {
				rcpts = append(rcpts, m.Mail())
			}
		}
		if c.Type == TypeRemove {
			rcpts = append(rcpts, c.Member.Mail())
		}
		l := s.letter(c, s.me, GroupConversationID(c.Conversation), st.Name, now)
		return s.submit(tx, content, l, rcpts, now)
	})
}

// submit files the user's text or change in Chats and, with recipients, enqueues it in the outbox.
func (s *Service) submit(tx *store.Tx, content []byte, l *letter, rcpts []string, sent time.Time) error {
	raw := l.render()
	meta := store.Meta{ConversationID: convID(l.Conversation)}
	if len(rcpts) == 0 {
		_, err := tx.Append(store.NewMessage{MailboxID: s.chatsID, Raw: raw, Flags: store.Flags{System: store.FlagSeen}, Meta: meta})
		return err
	}
	_, err := tx.Submit(store.Submission{
		OutboxNew: store.OutboxNew{From: s.me.Mail(), Rcpts: rcpts, Raw: raw, Content: content, Created: sent},
		MailboxID: s.chatsID,
		Received:  sent,
		Meta:      meta,
	})
	if err != nil {
		return err
	}
	return tx.TouchConversation(meta.ConversationID, sent)
}

// recordChange adds a change to its group's log, recomputes the state and stores it. The state is nil
// while unknown.
func (s *Service) recordChange(tx *store.Tx, c *Content, content []byte, author identity.Address, sent time.Time) (*State, error) {
	conv := GroupConversationID(c.Conversation).String()
	_, err := tx.AddConversationChange(store.ConversationID(conv), store.ConversationChange{
		Sent: sent, AuthorKey: author.Key, MessageID: c.Message[:], Author: author.Mail(), Content: content,
	})
	if err != nil {
		return nil, err
	}
	st, err := s.foldTx(tx, conv)
	if err != nil {
		return nil, err
	}
	row := store.Conversation{ID: store.ConversationID(conv), Kind: KindGroup, GroupID: c.Conversation[:], Updated: sent}
	if st != nil {
		row.Name, row.State = st.Name, EncodeState(st)
	}
	if err := tx.PutConversation(row); err != nil {
		return nil, err
	}
	return st, nil
}

// foldTx computes a group's state from its stored changes.
func (s *Service) foldTx(tx *store.Tx, conv string) (*State, error) {
	rows, err := tx.ConversationChanges(store.ConversationID(conv))
	if err != nil {
		return nil, err
	}
	changes := make([]Change, 0, len(rows))
	for _, r := range rows {
		c, err := Parse(r.Content)
		if err != nil {
			continue // cannot happen: only parsed contents are stored
		}
		author, err := mail.ParseRecipient(r.Author)
		if err != nil {
			continue
		}
		changes = append(changes, Change{Sent: r.Sent, Author: author, Content: c})
	}
	return Fold(changes), nil
}

// letter makes the mail form of a text or change by author in conversation conv.
func (s *Service) letter(c *Content, author identity.Address, conv ID, groupName string, sent time.Time) *letter {
	l := &letter{From: author.Mail(), Conversation: conv, Message: c.Message, Sent: sent.Truncate(time.Second),
		Event: eventOfType[c.Type]}
	switch c.Type {
	case TypeText:
		l.Text = c.Text
	case TypeCreate:
		l.Text = author.Mail() + " created the group " + quoted(c.State.Name)
		groupName = c.State.Name
	case TypeAdd:
		l.Member = c.Member.Mail()
		l.Text = author.Mail() + " added " + c.Member.Mail()
	case TypeRemove:
		l.Member = c.Member.Mail()
		l.Text = author.Mail() + " removed " + c.Member.Mail()
	case TypeLeave:
		l.Text = author.Mail() + " left the group"
	case TypeRename:
		l.Text = author.Mail() + " renamed the group to " + quoted(c.Name)
		groupName = c.Name
	}
	l.GroupName = groupName
	return l
}

// quoted puts a group name in typographic quotes for event sentences.
func quoted(s string) string { return "“" + s + "”" }

// Send sends a text to a conversation. When it returns nil the text is durably in the outbox and in
// Chats.
func (s *Service) Send(ctx context.Context, id, text string) (Message, error) {
	if len(text) == 0 || len(text) > MaxText || !utf8.ValidString(text) || strings.TrimSpace(text) == "" {
		return Message{}, invalid("a message is 1 to %d bytes of UTF-8 text", MaxText)
	}
	cid, err := ParseID(id)
	if err != nil {
		return Message{}, err
	}
	now := s.now().Truncate(time.Millisecond)
	msgID := NewID()
	var uid store.UID
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		conv, err := tx.Conversation(store.ConversationID(id))
		if errors.Is(err, store.ErrNoConversation) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		c := &Content{Type: TypeText, Message: msgID, Text: text}
		var rcpts []string
		l := &letter{From: s.me.Mail(), Conversation: cid, Message: c.Message, Sent: now.Truncate(time.Second), Text: text}
		if conv.Kind == KindDirect {
			l.To, rcpts = conv.Peer, []string{conv.Peer}
		} else {
			c.Conversation = ID(conv.GroupID)
			st, err := DecodeState(conv.State)
			if err != nil {
				return err
			}
			if st == nil || !st.Has(s.me) {
				return fmt.Errorf("%w: you are not (or no longer) in this group", ErrNotMember)
			}
			l.GroupName = st.Name
			for _, m := range st.Members {
				if !m.Equal(s.me) {
					rcpts = append(rcpts, m.Mail())
				}
			}
			if len(rcpts) == 0 {
				return invalid("everyone else has left this group")
			}
		}
		content, err := c.Encode()
		if err != nil {
			return err
		}
		raw := l.render()
		sub, err := tx.Submit(store.Submission{
			OutboxNew: store.OutboxNew{From: s.me.Mail(), Rcpts: rcpts, Raw: raw, Content: content, Created: now},
			MailboxID: s.chatsID, Received: now, Meta: store.Meta{ConversationID: store.ConversationID(id)},
		})
		if err != nil {
			return err
		}
		uid = sub.Sent.UID
		return tx.TouchConversation(store.ConversationID(id), now)
	})
	if err != nil {
		return Message{}, err
	}
	m, err := s.message(ctx, uid, nil)
	if err != nil {
		// The message is on disk and in the outbox: say so, rather than invite a second send.
		s.log.Warn("chat: reading back a sent message", "err", err)
		return Message{ID: msgID.String(), Conversation: id, UID: uid, Kind: "text", Mine: true, Text: text, Sent: now,
			Seen: true, Status: StatusSending, From: s.member(s.me.Mail(), nil)}, nil
	}
	return m, nil
}

// HandleChat files a chat envelope sealed to me (see inbox.ChatHandler).
func (s *Service) HandleChat(ctx context.Context, me *identity.Identity, m *seal.Message, expires time.Time) (filed, ack bool, err error) {
	c, err := Parse(m.Content)
	if err != nil {
		return false, false, err
	}
	if err := c.CheckAuthor(m.Sender); err != nil {
		return false, false, err
	}
	if m.Sender.Equal(s.me) {
		return false, false, malformed("a chat envelope from this node's own identity")
	}
	conv := GroupConversationID(c.Conversation)
	if c.Conversation.IsZero() {
		conv = DirectID(me.PublicKey(), m.Sender.Key)
	}
	switch c.Type {
	case TypeTyping:
		s.typingFrom(ctx, conv, m.Sender)
		return false, false, nil
	case TypeRead:
		return false, false, s.readFrom(ctx, m.Sender, c.Keys)
	}
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		claimed, err := tx.ClaimReplayKey(store.ReplayKey(m.ReplayKey), expires)
		if err != nil {
			return err
		}
		if !claimed {
			ack = true // filed before: receipt again (protocol.md §10.2 rule 3)
			return nil
		}
		var groupName string
		flags := store.Flags{}
		switch {
		case c.Conversation.IsZero():
			if err := s.ensureDirect(tx, conv, m.Sender); err != nil {
				return err
			}
		case c.IsChange():
			before, err := s.foldTx(tx, conv.String())
			if err != nil {
				return err
			}
			st, err := s.recordChange(tx, c, m.Content, m.Sender, m.Sent)
			if err != nil {
				return err
			}
			if st == nil || (before != nil && bytes.Equal(EncodeState(before), EncodeState(st))) {
				// Kept in the log (the fold skips it) and receipted, but not shown: a change by a
				// non-member, or to a group not known yet, or one that changes nothing, is no event.
				ack = true
				return nil
			}
			groupName = st.Name
			flags.System = store.FlagSeen // events do not count as unread
		default: // a group text: only from a member of a group this node knows (protocol.md §10.3).
			// One that overtook the group's create is not receipted, so its sender sends it again.
			row, err := tx.Conversation(convID(conv))
			if errors.Is(err, store.ErrNoConversation) {
				return errNotFiled
			}
			if err != nil {
				return err
			}
			st, err := DecodeState(row.State)
			if err != nil {
				return err
			}
			if row.Kind != KindGroup || st == nil || !st.Has(m.Sender) {
				return errNotFiled
			}
			groupName = st.Name
		}
		l := s.letter(c, m.Sender, conv, groupName, m.Sent)
		if c.Conversation.IsZero() {
			l.To = s.me.Mail()
		}
		_, err = tx.Append(store.NewMessage{
			MailboxID: s.chatsID, Raw: l.render(), Flags: flags, Received: s.now(),
			Meta: store.Meta{SenderVerified: m.Sender.Mail(), ConversationID: convID(conv), ViaTangle: true,
				EnvelopeKey: m.ReplayKey[:]},
		})
		if err != nil {
			return err
		}
		filed, ack = true, true
		return tx.TouchConversation(convID(conv), m.Sent)
	})
	if errors.Is(err, errNotFiled) {
		s.log.Debug("chat: group text from a non-member or for an unknown group ignored", "conversation", conv)
		return false, false, nil
	}
	return filed, ack, err
}

// errNotFiled rolls back HandleChat's transaction for a text that is not filed.
var errNotFiled = errors.New("chat: not filed")

// typingFrom pushes a typing event if the sender may write to the conversation.
func (s *Service) typingFrom(ctx context.Context, conv ID, from identity.Address) {
	row, err := s.st.Conversation(ctx, convID(conv))
	if err != nil {
		return // an unknown conversation: nothing to show it in
	}
	if row.Kind == KindGroup {
		st, err := DecodeState(row.State)
		if err != nil || st == nil || !st.Has(from) {
			return
		}
	} else if peer, err := mail.ParseRecipient(row.Peer); err != nil || !peer.Equal(from) {
		return
	}
	names := s.names(ctx)
	mem := s.member(from.Mail(), names)
	s.emit(Event{Type: "typing", Conversation: conv.String(), From: &mem})
}

// readFrom applies a read notice: each key must name an envelope this node sealed to `from`
// (protocol.md §10.2 sender rule 1, as §10.3 asks); those recipients are marked read, and a message
// every recipient has read gets the $Read keyword.
func (s *Service) readFrom(ctx context.Context, from identity.Address, keys [][32]byte) error {
	for _, k := range keys {
		r, err := s.st.OutboxByEnvelopeKey(ctx, k[:])
		if errors.Is(err, store.ErrNoOutboxItem) {
			continue
		}
		if err != nil {
			return err
		}
		to, err := mail.ParseRecipient(r.Rcpt)
		if err != nil || !to.Equal(from) {
			continue
		}
		err = s.st.Update(ctx, func(tx *store.Tx) error {
			if ok, err := tx.MarkRecipientRead(r.OutboxID, r.Rcpt); err != nil || !ok {
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		read := func(rc store.OutboxRcpt) bool { return !rc.ReadAt.IsZero() }
		if err := s.st.MarkSentCopy(ctx, r.OutboxID, store.ReadKeyword, read); err != nil {
			return err
		}
	}
	return nil
}

// row returns a conversation's id and stored row; ErrInvalid for a malformed id, ErrNotFound for an
// unknown one.
func (s *Service) row(ctx context.Context, id string) (ID, store.Conversation, error) {
	cid, err := ParseID(id)
	if err != nil {
		return cid, store.Conversation{}, err
	}
	row, err := s.st.Conversation(ctx, store.ConversationID(id))
	if errors.Is(err, store.ErrNoConversation) {
		return cid, row, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return cid, row, err
}

// MarkRead marks a conversation's messages read and sends read notices to their senders.
func (s *Service) MarkRead(ctx context.Context, id string) error {
	_, row, err := s.row(ctx, id)
	if err != nil {
		return err
	}
	unseen, err := s.st.ConversationUnseen(ctx, s.chatsID, store.ConversationID(id))
	if err != nil || len(unseen) == 0 {
		return err
	}
	var uids []store.UID
	keys := map[string][][32]byte{}
	for _, u := range unseen {
		uids = append(uids, u.UID)
		if u.SenderVerified != "" && len(u.EnvelopeKey) == 32 && len(keys[u.SenderVerified]) < MaxReadKeys {
			keys[u.SenderVerified] = append(keys[u.SenderVerified], [32]byte(u.EnvelopeKey))
		}
	}
	if _, err := s.st.StoreFlags(ctx, s.chatsID, store.UIDSetOf(uids...), store.FlagChange{
		Op: store.FlagsAdd, Flags: store.Flags{System: store.FlagSeen},
	}); err != nil {
		return err
	}
	wire := ID{}
	if row.Kind == KindGroup {
		wire = ID(row.GroupID)
	}
	for sender, ks := range keys {
		to, err := mail.ParseRecipient(sender)
		if err != nil {
			continue
		}
		c := &Content{Type: TypeRead, Conversation: wire, Message: NewID(), Keys: ks}
		s.sendNote(to, c, s.params.DefaultChatTTL)
	}
	return nil
}

// Typing sends a typing notice to the conversation's other members, at most one every 3 s.
func (s *Service) Typing(ctx context.Context, id string) error {
	cid, row, err := s.row(ctx, id)
	if err != nil {
		return err
	}
	now := s.now()
	s.mu.Lock()
	last, ok := s.typing[cid]
	if ok && now.Sub(last) < typingInterval {
		s.mu.Unlock()
		return nil
	}
	s.typing[cid] = now
	s.mu.Unlock()
	var to []identity.Address
	wire := ID{}
	if row.Kind == KindDirect {
		a, err := mail.ParseRecipient(row.Peer)
		if err != nil {
			return err
		}
		to = append(to, a)
	} else {
		wire = ID(row.GroupID)
		st, err := DecodeState(row.State)
		if err != nil {
			return err
		}
		if st == nil || !st.Has(s.me) {
			return fmt.Errorf("%w: you are not (or no longer) in this group", ErrNotMember)
		}
		for _, m := range st.Members {
			if !m.Equal(s.me) {
				to = append(to, m)
			}
		}
	}
	for _, a := range to {
		s.sendNote(a, &Content{Type: TypeTyping, Conversation: wire, Message: NewID()}, tangle.MinTTL)
	}
	return nil
}

// sendNote publishes a notice in the background: its proof of work takes tens of milliseconds and
// its loss loses nothing.
func (s *Service) sendNote(to identity.Address, c *Content, ttl uint32) {
	content, err := c.Encode()
	if err != nil {
		s.log.Error("chat: notice", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Go(func() {
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		defer cancel()
		if err := s.notes.SendNote(ctx, to, content, ttl); err != nil {
			s.log.Debug("chat: notice not sent", "type", c.Type, "err", err)
		}
	})
}

// convID is a conversation's id as the store keys it (32 hex digits).
func convID(id ID) store.ConversationID { return store.ConversationID(id.String()) }
