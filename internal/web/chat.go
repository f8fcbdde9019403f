package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/chat"
	"github.com/tanglemail/tanglemail/internal/store"
)

// Chat is what the API needs of the chat service (internal/chat's Service). Errors wrap
// chat.ErrNotFound (404), chat.ErrInvalid (400) or chat.ErrNotMember (409), each with a sentence that
// the API passes on; any other error is the node's failure (500).
type Chat interface {
	// Conversations lists the conversations, most recently active first.
	Conversations(ctx context.Context) ([]chat.Conversation, error)
	// Conversation returns one conversation.
	Conversation(ctx context.Context, id string) (chat.Conversation, error)
	// Direct returns the 1:1 conversation with peer (a petname or an address), made on first use.
	Direct(ctx context.Context, peer string) (chat.Conversation, error)
	// CreateGroup makes a group of the user and members (petnames or addresses).
	CreateGroup(ctx context.Context, name string, members []string) (chat.Conversation, error)
	AddMember(ctx context.Context, id, member string) error
	RemoveMember(ctx context.Context, id, member string) error
	Leave(ctx context.Context, id string) error
	Rename(ctx context.Context, id, name string) error
	// Send sends a text; the message is durably in the outbox when it returns nil.
	Send(ctx context.Context, id, text string) (chat.Message, error)
	// History returns up to limit messages before the UID before (0: the newest), oldest first.
	History(ctx context.Context, id string, before store.UID, limit int) ([]chat.Message, error)
	// MarkRead marks the conversation read and sends read receipts.
	MarkRead(ctx context.Context, id string) error
	// Typing sends a typing notice (rate-limited by the service).
	Typing(ctx context.Context, id string) error
	// Subscribe returns the service's events until ctx ends; the channel is closed then.
	Subscribe(ctx context.Context) <-chan chat.Event
}

// Chat limits (docs/api.md, protocol.md §10.3).
const (
	maxChatText     = 4000
	maxGroupMembers = 99 // plus the user: 100
	maxGroupName    = 100
)

// chatOnly answers 503 when the node has no chat service.
func (s *Server) chatOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.chat == nil {
			writeError(w, http.StatusServiceUnavailable, "chat is not available on this node")
			return
		}
		h(w, r)
	}
}

// chatError answers for an error of the chat service.
func (s *Server) chatError(w http.ResponseWriter, r *http.Request, what string, err error) {
	msg := strings.TrimPrefix(err.Error(), "chat: ")
	switch {
	case errors.Is(err, chat.ErrNotFound):
		writeError(w, http.StatusNotFound, msg)
	case errors.Is(err, chat.ErrInvalid):
		writeError(w, http.StatusBadRequest, msg)
	case errors.Is(err, chat.ErrNotMember):
		writeError(w, http.StatusConflict, msg)
	default:
		s.fail(w, r, what, err)
	}
}

// conversationParam parses the {id} of a conversation path: 32 lower-case hex digits.
func conversationParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	ok := len(id) == 32
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
	}
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("conversation id %q is not 32 lower-case hex digits (GET /api/conversations lists them)", id))
		return "", false
	}
	return id, true
}

// handleConversations is GET /api/conversations.
func (s *Server) handleConversations(w http.ResponseWriter, r *http.Request) {
	cs, err := s.chat.Conversations(r.Context())
	if err != nil {
		s.chatError(w, r, "list the conversations", err)
		return
	}
	out := api.Conversations{Conversations: make([]api.Conversation, 0, len(cs))}
	for _, c := range cs {
		out.Conversations = append(out.Conversations, conversation(c))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleNewConversation is POST /api/conversations: {"peer"} for a 1:1 conversation (200), or
// {"name", "members"} for a new group (201).
func (s *Server) handleNewConversation(w http.ResponseWriter, r *http.Request) {
	var req api.NewConversation
	if !decodeJSON(w, r, &req) {
		return
	}
	switch {
	case req.Peer != nil && (req.Name != nil || req.Members != nil):
		writeError(w, http.StatusBadRequest, `give either "peer" (a 1:1 conversation) or "name" and "members" (a group), not both`)
	case req.Peer != nil:
		peer := strings.TrimSpace(*req.Peer)
		if peer == "" || len(peer) > 1000 {
			writeError(w, http.StatusBadRequest, `field "peer" must be a contact's petname or a tm1…@tangle address`)
			return
		}
		c, err := s.chat.Direct(r.Context(), peer)
		if err != nil {
			s.chatError(w, r, "open the conversation", err)
			return
		}
		writeJSON(w, http.StatusOK, conversation(c))
	case req.Name != nil || req.Members != nil:
		if req.Name == nil {
			writeError(w, http.StatusBadRequest, `field "name" is missing: a group needs a name`)
			return
		}
		if msg := checkName(*req.Name); msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		if len(req.Members) == 0 {
			writeError(w, http.StatusBadRequest, `field "members" is missing or empty: name at least one member (petnames or addresses)`)
			return
		}
		if len(req.Members) > maxGroupMembers {
			writeError(w, http.StatusBadRequest, fmt.Sprintf(`field "members": a group has at most %d members besides you`, maxGroupMembers))
			return
		}
		for _, m := range req.Members {
			if strings.TrimSpace(m) == "" || len(m) > 1000 {
				writeError(w, http.StatusBadRequest, `field "members": each member must be a contact's petname or a tm1…@tangle address`)
				return
			}
		}
		c, err := s.chat.CreateGroup(r.Context(), *req.Name, req.Members)
		if err != nil {
			s.chatError(w, r, "create the group", err)
			return
		}
		writeJSON(w, http.StatusCreated, conversation(c))
	default:
		writeError(w, http.StatusBadRequest, `give "peer" (a petname or address) for a 1:1 conversation, or "name" and "members" for a group`)
	}
}

// checkName says what is wrong with a group name, or "".
func checkName(name string) string {
	if strings.TrimSpace(name) == "" {
		return `field "name" is empty: a group needs a name`
	}
	if len(name) > maxGroupName {
		return fmt.Sprintf(`field "name" is too long: at most %d bytes`, maxGroupName)
	}
	return checkText("name", name, maxGroupName, true)
}

// handleConversation is GET /api/conversations/{id}.
func (s *Server) handleConversation(w http.ResponseWriter, r *http.Request) {
	id, ok := conversationParam(w, r)
	if !ok {
		return
	}
	c, err := s.chat.Conversation(r.Context(), id)
	if err != nil {
		s.chatError(w, r, "read the conversation", err)
		return
	}
	writeJSON(w, http.StatusOK, conversation(c))
}

// handleRename is PATCH /api/conversations/{id}: {"name"}.
func (s *Server) handleRename(w http.ResponseWriter, r *http.Request) {
	id, ok := conversationParam(w, r)
	if !ok {
		return
	}
	var req api.Rename
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Name == nil {
		writeError(w, http.StatusBadRequest, `field "name" is missing: the group's new name`)
		return
	}
	if msg := checkName(*req.Name); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	s.chatDone(w, r, "rename the group", s.chat.Rename(r.Context(), id, *req.Name))
}

// handleAddMember is POST /api/conversations/{id}/members: {"member"}.
func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	id, ok := conversationParam(w, r)
	if !ok {
		return
	}
	var req api.AddMember
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Member == nil || strings.TrimSpace(*req.Member) == "" || len(*req.Member) > 1000 {
		writeError(w, http.StatusBadRequest, `field "member" is missing: a contact's petname or a tm1…@tangle address`)
		return
	}
	s.chatDone(w, r, "add the member", s.chat.AddMember(r.Context(), id, strings.TrimSpace(*req.Member)))
}

// handleRemoveMember is DELETE /api/conversations/{id}/members/{address}.
func (s *Server) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	id, ok := conversationParam(w, r)
	if !ok {
		return
	}
	member := r.PathValue("address")
	if strings.TrimSpace(member) == "" || len(member) > 1000 {
		writeError(w, http.StatusBadRequest, "the member's address is missing from the path")
		return
	}
	s.chatDone(w, r, "remove the member", s.chat.RemoveMember(r.Context(), id, member))
}

// handleHistory is GET /api/conversations/{id}/messages?limit=&before=: oldest first.
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	id, ok := conversationParam(w, r)
	if !ok {
		return
	}
	limit, before, ok := pageQuery(w, r, 100)
	if !ok {
		return
	}
	// One more than asked for tells whether there are older ones.
	ms, err := s.chat.History(r.Context(), id, before, limit+1)
	if err != nil {
		s.chatError(w, r, "read the conversation", err)
		return
	}
	more := len(ms) > limit
	if more {
		ms = ms[len(ms)-limit:]
	}
	out := api.ChatHistory{Messages: append(make([]api.ChatMessage, 0, len(ms)), ms...), More: more}
	writeJSON(w, http.StatusOK, out)
}

// handleChatSend is POST /api/conversations/{id}/messages: {"text"} → 202 and the message.
func (s *Server) handleChatSend(w http.ResponseWriter, r *http.Request) {
	id, ok := conversationParam(w, r)
	if !ok {
		return
	}
	var req api.ChatText
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Text == nil || *req.Text == "" {
		writeError(w, http.StatusBadRequest, `field "text" is missing or empty`)
		return
	}
	if len(*req.Text) > maxChatText {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(`field "text" is too long: a chat message is at most %d bytes (send longer texts as mail)`, maxChatText))
		return
	}
	if !utf8.ValidString(*req.Text) {
		writeError(w, http.StatusBadRequest, `field "text" is not valid UTF-8`)
		return
	}
	m, err := s.chat.Send(r.Context(), id, *req.Text)
	if err != nil {
		s.chatError(w, r, "send the message", err)
		return
	}
	writeJSON(w, http.StatusAccepted, m)
}

// conversationAction is a POST /api/conversations/{id}/<action> without a body that answers 204:
// leave, read, typing. what completes the error sentence "could not …".
func (s *Server) conversationAction(what string, act func(ctx context.Context, id string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := conversationParam(w, r)
		if !ok {
			return
		}
		s.chatDone(w, r, what, act(r.Context(), id))
	}
}

// chatDone answers a chat change that returned err: 204, or the error (chatError; what completes
// "could not …").
func (s *Server) chatDone(w http.ResponseWriter, r *http.Request, what string, err error) {
	if err != nil {
		s.chatError(w, r, what, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// conversation is a conversation of the chat service as the API shows it: members is a list, never null.
func conversation(c chat.Conversation) api.Conversation {
	if c.Members == nil {
		c.Members = []api.Member{}
	}
	return c
}

// conversationPtr is conversation for a pointer; nil stays nil.
func conversationPtr(c *chat.Conversation) *api.Conversation {
	if c == nil {
		return nil
	}
	out := conversation(*c)
	return &out
}
