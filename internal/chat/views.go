package chat

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/supervise"
)

// names maps addresses to the user's petnames.
func (s *Service) names(ctx context.Context) map[string]string {
	cs, err := s.st.Contacts(ctx)
	if err != nil {
		return nil
	}
	out := make(map[string]string, len(cs))
	for _, c := range cs {
		if _, ok := out[strings.ToLower(c.Address)]; !ok {
			out[strings.ToLower(c.Address)] = c.Petname
		}
	}
	return out
}

func (s *Service) member(addr string, names map[string]string) Member {
	return Member{Address: addr, Name: names[strings.ToLower(addr)], Me: strings.EqualFold(addr, s.me.Mail())}
}

// display is a member's petname, "you", or its address.
func display(m Member) string {
	switch {
	case m.Me:
		return "you"
	case m.Name != "":
		return m.Name
	}
	return m.Address
}

// Conversations lists the conversations, most recently active first.
func (s *Service) Conversations(ctx context.Context) ([]Conversation, error) {
	rows, err := s.st.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := s.st.ConversationCounts(ctx, s.chatsID)
	if err != nil {
		return nil, err
	}
	names := s.names(ctx)
	out := make([]Conversation, 0, len(rows))
	for _, r := range rows {
		c, err := s.view(ctx, r, counts[r.ID], names)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Conversation returns one conversation.
func (s *Service) Conversation(ctx context.Context, id string) (Conversation, error) {
	_, r, err := s.row(ctx, id)
	if err != nil {
		return Conversation{}, err
	}
	counts, err := s.st.ConversationCounts(ctx, s.chatsID)
	if err != nil {
		return Conversation{}, err
	}
	return s.view(ctx, r, counts[store.ConversationID(id)], s.names(ctx))
}

func (s *Service) view(ctx context.Context, r store.Conversation, n store.ConversationCounts, names map[string]string) (Conversation, error) {
	c := Conversation{ID: string(r.ID), Kind: r.Kind, Unread: n.Unseen, Updated: r.Updated, Members: []Member{}}
	if r.Kind == KindDirect {
		c.Peer = r.Peer
		peer := s.member(r.Peer, names)
		c.Name = display(peer)
		c.Members = append(c.Members, peer, s.member(s.me.Mail(), names))
	} else {
		st, err := DecodeState(r.State)
		if err != nil {
			return c, err
		}
		c.Name = r.Name
		if st == nil {
			c.Name = "(group)"
		} else {
			for _, m := range st.Members {
				c.Members = append(c.Members, s.member(m.Mail(), names))
			}
			c.Left = !st.Has(s.me)
		}
	}
	if n.LastUID != 0 {
		m, err := s.message(ctx, n.LastUID, names)
		if err == nil {
			c.Last = &m
		}
	}
	return c, nil
}

// History returns the last limit messages of a conversation before UID `before` (0: the newest),
// oldest first. (Ask for one more than shown to learn whether there are older ones.)
func (s *Service) History(ctx context.Context, id string, before store.UID, limit int) ([]Message, error) {
	if _, err := s.Conversation(ctx, id); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	uids, _, err := s.st.ConversationUIDs(ctx, s.chatsID, store.ConversationID(id), before, limit)
	if err != nil {
		return nil, err
	}
	names := s.names(ctx)
	out := make([]Message, 0, len(uids))
	for _, uid := range uids {
		m, err := s.message(ctx, uid, names)
		if errors.Is(err, store.ErrNoMessage) {
			continue // expunged meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// message reads a message of Chats as the chat view shows it.
func (s *Service) message(ctx context.Context, uid store.UID, names map[string]string) (Message, error) {
	if names == nil {
		names = s.names(ctx)
	}
	sm, err := s.st.Message(ctx, s.chatsID, uid)
	if err != nil {
		return Message{}, err
	}
	raw, err := s.st.Raw(ctx, s.chatsID, uid)
	if err != nil {
		return Message{}, err
	}
	l, err := readLetter(raw)
	if err != nil {
		return Message{}, err
	}
	m := Message{ID: l.Message.String(), Conversation: string(sm.Meta.ConversationID), UID: uid, Kind: "text", Text: l.Text,
		Sent: l.Sent, Seen: sm.Flags.System&store.FlagSeen != 0}
	if m.Sent.IsZero() {
		m.Sent = sm.Received
	}
	from := sm.Meta.SenderVerified
	if from == "" {
		from = s.me.Mail()
	}
	m.From = s.member(from, names)
	m.Mine = m.From.Me
	if l.Event != "" {
		m.Kind = "event"
		m.Text = describe(l, m.From, s.member(l.Member, names))
	}
	if m.Mine && sm.Meta.OutboxID != 0 {
		m.Status = s.status(ctx, sm)
	}
	return m, nil
}

// describe is an event's sentence with petnames.
func describe(l *letter, author, member Member) string {
	a := display(author)
	switch l.Event {
	case "create":
		return a + " created the group " + quoted(l.GroupName)
	case "add":
		return a + " added " + display(member)
	case "remove":
		return a + " removed " + display(member)
	case "leave":
		return a + " left the group"
	case "rename":
		return a + " renamed the group to " + quoted(l.GroupName)
	}
	return l.Text
}

// status is the delivery status of one of the user's messages.
func (s *Service) status(ctx context.Context, m store.Message) string {
	if m.Flags.Has(store.ReadKeyword) {
		return StatusRead
	}
	it, err := s.st.OutboxItem(ctx, m.Meta.OutboxID)
	if err != nil {
		if m.Flags.Has(store.DeliveredKeyword) {
			return StatusDelivered
		}
		return StatusSent // the outbox item is gone: it was final
	}
	read, delivered, published := true, true, true
	for _, r := range it.Rcpts {
		switch r.State {
		case store.RcptFailed:
			return StatusFailed
		case store.RcptDelivered:
		case store.RcptPublished, store.RcptDelayed: // delayed: past the TTL, a receipt may still come
			delivered = false
		default:
			delivered, published = false, false
		}
		if r.ReadAt.IsZero() {
			read = false
		}
	}
	switch {
	case read:
		return StatusRead
	case delivered:
		return StatusDelivered
	case published:
		return StatusSent
	}
	return StatusSending
}

// Subscribe returns a channel of events, closed when ctx ends. A subscriber that falls behind loses
// events and then gets one Event{Type: "resync"}.
func (s *Service) Subscribe(ctx context.Context) <-chan Event {
	sub := &subscriber{ch: make(chan Event, subscriberBuf)}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	out := make(chan Event)
	go func() {
		defer close(out)
		defer func() {
			s.mu.Lock()
			delete(s.subs, sub)
			s.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-sub.ch:
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func (s *Service) emit(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		if sub.overflow {
			select {
			case sub.ch <- Event{Type: "resync"}:
				sub.overflow = false
			default:
				continue
			}
		}
		select {
		case sub.ch <- e:
		default:
			sub.overflow = true
		}
	}
}

// Run turns the store's changes into events until ctx ends: a message filed in Chats ("message" and
// "conversation"), a status change of the user's own message ("status"), a conversation changed.
//
// A panic while handling changes is recovered, logged, counted (tanglemail_panics_total{loop="chat"})
// and the loop restarted; subscribers get a "resync" event, since changes may have been missed.
func (s *Service) Run(ctx context.Context) error {
	restarted := false
	return supervise.Run(ctx, s.log, "chat", &s.panics, func(ctx context.Context) error {
		if restarted {
			s.emit(Event{Type: "resync"})
		}
		restarted = true
		return s.run(ctx)
	})
}

// run is Run's loop.
func (s *Service) run(ctx context.Context) error {
	l := s.st.Subscribe()
	defer l.Close()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			s.cancel()
			s.wg.Wait()
			return ctx.Err()
		case <-l.Ready():
		}
		changes, overflow := l.Take()
		if overflow {
			s.emit(Event{Type: "resync"})
			continue
		}
		convs := map[string]bool{}
		status := map[store.UID]bool{}
		for _, c := range changes {
			switch c := c.(type) {
			case store.ChangeAdd:
				if c.MailboxID != s.chatsID {
					continue
				}
				m, err := s.message(ctx, c.UID, nil)
				if err != nil {
					continue
				}
				s.emit(Event{Type: "message", Conversation: m.Conversation, Message: &m})
				convs[m.Conversation] = true
			case store.ChangeFlags:
				if c.MailboxID == s.chatsID {
					status[c.UID] = true
				}
			case store.ChangeOutbox:
				// The change names the sent copy: mail items are skipped without a read.
				if c.SentMailboxID == s.chatsID && c.SentUID != 0 {
					status[c.SentUID] = true
				}
			case store.ChangeConversation:
				convs[string(c.ID)] = true
			case store.ChangeExpunge:
				if c.MailboxID == s.chatsID {
					s.emit(Event{Type: "resync"})
				}
			}
		}
		uids := make([]store.UID, 0, len(status))
		for uid := range status {
			uids = append(uids, uid)
		}
		slices.Sort(uids)
		for _, uid := range uids {
			m, err := s.message(ctx, uid, nil)
			if err != nil {
				continue
			}
			if m.Mine {
				s.emit(Event{Type: "status", Conversation: m.Conversation, Message: &m})
			}
			convs[m.Conversation] = true // unread counts
		}
		for id := range convs {
			if id == "" {
				continue
			}
			c, err := s.Conversation(ctx, id)
			if err != nil {
				continue
			}
			s.emit(Event{Type: "conversation", Conversation: id, Info: &c})
		}
	}
}
