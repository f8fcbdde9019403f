package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/store"
)

// deliveredKeyword is the keyword the outbox sets on a Sent copy once every recipient has receipted
// (docs/decisions.md).
const deliveredKeyword = "$Delivered"

// roleOrder is the order of role folders in GET /api/folders; other folders follow by name.
var roleOrder = []store.Role{store.RoleInbox, store.RoleDrafts, store.RoleSent, store.RoleArchive,
	store.RoleJunk, store.RoleTrash, store.RoleChats}

func (s *Server) folders(ctx context.Context) ([]api.Folder, error) {
	ms, err := s.store.Mailboxes(ctx)
	if err != nil {
		return nil, err
	}
	rank := func(r store.Role) int {
		if i := slices.Index(roleOrder, r); i >= 0 {
			return i
		}
		return len(roleOrder)
	}
	slices.SortStableFunc(ms, func(a, b store.Mailbox) int { return rank(a.Role) - rank(b.Role) })
	out := make([]api.Folder, 0, len(ms))
	for _, m := range ms {
		out = append(out, api.Folder{ID: int64(m.ID), Name: m.Name, Role: string(m.Role), Messages: m.Messages, Unseen: m.Unseen})
	}
	return out, nil
}

// handleFolders is GET /api/folders.
func (s *Server) handleFolders(w http.ResponseWriter, r *http.Request) {
	fs, err := s.folders(r.Context())
	if err != nil {
		s.fail(w, r, "list the folders", err)
		return
	}
	writeJSON(w, http.StatusOK, api.Folders{Folders: fs})
}

// names resolves addresses to the user's petnames; it reads the contacts once, on first use.
type names struct {
	s      *Server
	ctx    context.Context
	byAddr map[string]string
}

func (s *Server) names(ctx context.Context) *names { return &names{s: s, ctx: ctx} }

// canonicalAddress returns a tangle address in its canonical form (tm1…@tangle, lower case), or a
// trimmed a if it is not one.
func canonicalAddress(a string) string {
	if addr, err := identity.ParseAddress(strings.TrimSpace(a)); err == nil {
		return addr.Mail()
	}
	return strings.TrimSpace(a)
}

// person returns how the user knows an address: its petname, else the display name of the header.
func (n *names) person(address, display string) api.Person {
	if n.byAddr == nil {
		n.byAddr = map[string]string{}
		if cs, err := n.s.store.Contacts(n.ctx); err == nil {
			for _, c := range cs {
				k := canonicalAddress(c.Address)
				if _, dup := n.byAddr[k]; !dup {
					n.byAddr[k] = c.Petname
				}
			}
		}
	}
	address = canonicalAddress(address)
	if p, ok := n.byAddr[address]; ok {
		return api.Person{Address: address, Name: p}
	}
	return api.Person{Address: address, Name: display}
}

func (n *names) people(list []mailAddress) []api.Person {
	out := make([]api.Person, 0, len(list))
	for _, a := range list {
		out = append(out, n.person(a.Address, a.Name))
	}
	return out
}

// previewRead is how much of a message a listing reads to find its first text.
const previewRead = 64 << 10

// summary builds a listing entry. It reads the message's first previewRead bytes only.
func (s *Server) summary(ctx context.Context, folder store.MailboxID, mi store.MessageInfo, nm *names) (api.Message, error) {
	raw, err := s.store.RawRange(ctx, folder, mi.UID, 0, previewRead)
	if err != nil {
		return api.Message{}, err
	}
	if hl := store.HeaderLen(raw); hl == len(raw) && mi.Size > int64(len(raw)) {
		// A header larger than the piece read: read the whole header.
		if raw, err = s.store.RawHeader(ctx, folder, mi.UID); err != nil {
			return api.Message{}, err
		}
	}
	pm := parseMessage(raw, true)
	return s.listing(folder, mi, pm, nm), nil
}

func (s *Server) listing(folder store.MailboxID, mi store.MessageInfo, pm *parsedMessage, nm *names) api.Message {
	m := api.Message{
		UID:       mi.UID,
		Folder:    int64(folder),
		To:        nm.people(pm.to),
		Subject:   pm.subject,
		Date:      pm.date,
		Size:      mi.Size,
		Flags:     mi.Flags.Strings(),
		Seen:      mi.Flags.Has(`\Seen`),
		Flagged:   mi.Flags.Has(`\Flagged`),
		Delivered: mi.Flags.Has(deliveredKeyword),
		Preview:   preview(pm.bodyText(), 200),
	}
	if len(pm.from) > 0 {
		m.From = nm.person(pm.from[0].Address, pm.from[0].Name)
	}
	if m.Date.IsZero() {
		m.Date = mi.Received
	}
	m.Date = m.Date.UTC()
	if m.Flags == nil {
		m.Flags = []string{}
	}
	return m
}

// preview returns the first n characters of text with runs of white space made one space, without
// white space at either end; control characters are dropped.
func preview(text string, n int) string {
	var b strings.Builder
	count := 0
	space := false
	for _, r := range text {
		if r == utf8.RuneError || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v' || r == 0xa0 {
			space = b.Len() > 0
			continue
		}
		if r < 0x20 || r == 0x7f {
			continue
		}
		if space {
			b.WriteByte(' ')
			count++
			space = false
			if count >= n {
				break
			}
		}
		b.WriteRune(r)
		count++
		if count >= n {
			break
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// maxQuery bounds the q parameter of a message listing.
const maxQuery = 1000

// handleListMessages is GET /api/folders/{id}/messages?limit=&before=&q=: newest first.
func (s *Server) handleListMessages(w http.ResponseWriter, r *http.Request) {
	id, ok := folderParam(w, r)
	if !ok {
		return
	}
	limit, before, ok := pageQuery(w, r, 50)
	if !ok {
		return
	}
	q := r.URL.Query().Get("q")
	if len(q) > maxQuery || !utf8.ValidString(q) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter q must be UTF-8 text of at most %d bytes", maxQuery))
		return
	}
	ctx := r.Context()
	if _, err := s.store.MailboxByID(ctx, id); err != nil {
		s.storeError(w, r, "read the folder", err)
		return
	}
	var older store.UIDSet // the UIDs below before
	if before == 1 {
		writeJSON(w, http.StatusOK, api.Messages{Messages: []api.Message{}})
		return
	} else if before > 1 {
		older = store.UIDSet{{Start: 1, Stop: before - 1}}
	}

	var infos []store.MessageInfo // ascending UID
	more := false
	if terms := strings.Fields(q); len(terms) > 0 {
		crit := store.SearchCriteria{Text: terms}
		if older != nil {
			crit.UID = []store.UIDSet{older}
		}
		res, err := s.store.Search(ctx, id, crit)
		if err != nil {
			s.storeError(w, r, "search the folder", err)
			return
		}
		uids := res.UIDs
		if len(uids) > limit {
			uids, more = uids[len(uids)-limit:], true
		}
		if len(uids) > 0 {
			l, err := s.store.List(ctx, id, store.ListQuery{UIDs: store.UIDSetOf(uids...)})
			if err != nil {
				s.storeError(w, r, "list the folder", err)
				return
			}
			infos = l.Messages
		}
	} else {
		l, err := s.store.List(ctx, id, store.ListQuery{UIDs: older})
		if err != nil {
			s.storeError(w, r, "list the folder", err)
			return
		}
		infos = l.Messages
		if len(infos) > limit {
			infos, more = infos[len(infos)-limit:], true
		}
	}
	nm := s.names(ctx)
	out := make([]api.Message, 0, len(infos))
	for i := len(infos) - 1; i >= 0; i-- {
		m, err := s.summary(ctx, id, infos[i], nm)
		if errors.Is(err, store.ErrNoMessage) {
			continue // expunged since the listing
		}
		if err != nil {
			s.storeError(w, r, "read a message", err)
			return
		}
		out = append(out, m)
	}
	writeJSON(w, http.StatusOK, api.Messages{Messages: out, More: more})
}

// loadMessage reads a message's state and bytes; on error it has answered.
func (s *Server) loadMessage(w http.ResponseWriter, r *http.Request) (store.MailboxID, store.Message, []byte, bool) {
	id, uid, ok := messageParam(w, r)
	if !ok {
		return 0, store.Message{}, nil, false
	}
	ctx := r.Context()
	if _, err := s.store.MailboxByID(ctx, id); err != nil {
		s.storeError(w, r, "read the folder", err)
		return 0, store.Message{}, nil, false
	}
	m, err := s.store.Message(ctx, id, uid)
	if err != nil {
		s.storeError(w, r, "read the message", err)
		return 0, store.Message{}, nil, false
	}
	raw, err := s.store.Raw(ctx, id, uid)
	if err != nil {
		s.storeError(w, r, "read the message", err)
		return 0, store.Message{}, nil, false
	}
	return id, m, raw, true
}

// handleMessage is GET /api/folders/{id}/messages/{uid}.
func (s *Server) handleMessage(w http.ResponseWriter, r *http.Request) {
	id, m, raw, ok := s.loadMessage(w, r)
	if !ok {
		return
	}
	pm := parseMessage(raw, false)
	nm := s.names(r.Context())
	d := api.MessageDetail{
		Message:        s.listing(id, m.MessageInfo, pm, nm),
		Cc:             nm.people(pm.cc),
		Bcc:            nm.people(pm.bcc),
		Text:           pm.bodyText(),
		HasHTML:        pm.hasHTML,
		SenderVerified: m.Meta.SenderVerified,
		E2E:            pm.e2e,
		E2ESignature:   pm.e2eSignature,
		Attachments:    pm.attachments,
	}
	if d.E2E == "" && m.Flags.Has(store.E2EKeyword) {
		// A Sent copy (kept readable) of mail the node encrypted for its Internet recipients.
		d.E2E, d.E2ESignature = "openpgp", "sent"
	}
	if d.Attachments == nil {
		d.Attachments = []api.Attachment{}
	}
	writeJSON(w, http.StatusOK, d)
}

// htmlCSP is the Content-Security-Policy of a message's HTML (docs/api.md): nothing may load or run.
const htmlCSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox allow-popups allow-popups-to-escape-sandbox"

// handleMessageHTML is GET /api/folders/{id}/messages/{uid}/html: the HTML part, sanitized.
func (s *Server) handleMessageHTML(w http.ResponseWriter, r *http.Request) {
	_, _, raw, ok := s.loadMessage(w, r)
	if !ok {
		return
	}
	pm := parseMessage(raw, false)
	if !pm.hasHTML {
		writeError(w, http.StatusNotFound, "this message has no HTML part; its text is in GET …/messages/{uid}")
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", htmlCSP)
	h.Set("X-Frame-Options", "SAMEORIGIN") // the web client shows it in a sandboxed iframe
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n"))
	w.Write([]byte(SanitizeHTML(pm.html)))
	w.Write([]byte("\n</body></html>\n"))
}

// handleAttachment is GET /api/folders/{id}/messages/{uid}/attachments/{n}: the n-th attachment
// (0-based, the order of the message's "attachments"), decoded, always as a download: whatever type
// the sender claimed, it is served as application/octet-stream with nosniff and the API's sandboxing
// CSP, so a browser never renders it in the node's origin. The file name goes in Content-Disposition's
// filename* (RFC 6266 §4.3, RFC 8187 encoding).
func (s *Server) handleAttachment(w http.ResponseWriter, r *http.Request) {
	_, _, raw, ok := s.loadMessage(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= maxParts {
		writeError(w, http.StatusBadRequest, "the attachment number must be 0 or more: the position in the message's \"attachments\"")
		return
	}
	pm := &parsedMessage{capture: n}
	pm.parse(raw)
	if n >= len(pm.attachments) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("the message has %d attachments: no attachment %d", len(pm.attachments), n))
		return
	}
	name := pm.attachments[n].Name
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(name))
	h.Set("Content-Length", strconv.Itoa(len(pm.captured)))
	w.WriteHeader(http.StatusOK)
	w.Write(pm.captured)
}

// handleMessageRaw is GET /api/folders/{id}/messages/{uid}/raw: the message as stored.
func (s *Server) handleMessageRaw(w http.ResponseWriter, r *http.Request) {
	_, m, raw, ok := s.loadMessage(w, r)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "message/rfc822")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="message-%d.eml"`, m.UID))
	w.WriteHeader(http.StatusOK)
	w.Write(raw)
}

// handleFlags is POST …/flags: {"add": [...], "remove": [...]} in one transaction.
func (s *Server) handleFlags(w http.ResponseWriter, r *http.Request) {
	id, uid, ok := messageParam(w, r)
	if !ok {
		return
	}
	var req api.FlagChange
	if !decodeJSON(w, r, &req) {
		return
	}
	if len(req.Add)+len(req.Remove) == 0 {
		writeError(w, http.StatusBadRequest, `give the flags to change: {"add": ["\\Seen"], "remove": ["\\Flagged"]}`)
		return
	}
	if len(req.Add)+len(req.Remove) > 100 {
		writeError(w, http.StatusBadRequest, "at most 100 flags can be changed at once")
		return
	}
	add, err := store.ParseFlags(req.Add...)
	if err != nil {
		writeError(w, http.StatusBadRequest, `field "add": `+flagError(err))
		return
	}
	remove, err := store.ParseFlags(req.Remove...)
	if err != nil {
		writeError(w, http.StatusBadRequest, `field "remove": `+flagError(err))
		return
	}
	for _, f := range add.Strings() {
		if remove.Has(f) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("flag %s is both in add and in remove", f))
			return
		}
	}
	set := store.UIDSetOf(uid)
	var flags store.Flags
	found := false
	err = s.store.Update(r.Context(), func(tx *store.Tx) error {
		res, err := tx.StoreFlags(id, set, store.FlagChange{Op: store.FlagsAdd, Flags: add})
		if err != nil || len(res.Messages) == 0 {
			return err
		}
		found, flags = true, res.Messages[0].Flags
		if len(remove.Strings()) > 0 {
			res, err = tx.StoreFlags(id, set, store.FlagChange{Op: store.FlagsRemove, Flags: remove})
			if err != nil {
				return err
			}
			flags = res.Messages[0].Flags
		}
		return nil
	})
	if err == nil && !found {
		err = store.ErrNoMessage
	}
	if err != nil {
		s.storeError(w, r, "change the flags", err)
		return
	}
	fl := flags.Strings()
	if fl == nil {
		fl = []string{}
	}
	writeJSON(w, http.StatusOK, api.Flags{Flags: fl})
}

func flagError(err error) string {
	return strings.TrimPrefix(err.Error(), "store: ") +
		` (flags are \Seen, \Answered, \Flagged, \Deleted, \Draft, or keywords without spaces or ()[]{}%*"\)`
}

// handleMove is POST …/move: {"to": <folder id>}.
func (s *Server) handleMove(w http.ResponseWriter, r *http.Request) {
	id, uid, ok := messageParam(w, r)
	if !ok {
		return
	}
	var req api.Move
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.To == nil || *req.To <= 0 {
		writeError(w, http.StatusBadRequest, `field "to" must be the id of the folder to move the message to (GET /api/folders lists them)`)
		return
	}
	to := store.MailboxID(*req.To)
	if to == id {
		writeError(w, http.StatusBadRequest, "the message is already in that folder")
		return
	}
	ctx := r.Context()
	if _, err := s.store.MailboxByID(ctx, id); err != nil {
		s.storeError(w, r, "read the folder", err)
		return
	}
	if _, err := s.store.MailboxByID(ctx, to); errors.Is(err, store.ErrNoMailbox) {
		writeError(w, http.StatusNotFound, `no such folder to move to (field "to"; GET /api/folders lists them)`)
		return
	} else if err != nil {
		s.fail(w, r, "read the folder", err)
		return
	}
	res, err := s.store.Move(ctx, id, store.UIDSetOf(uid), to)
	if err == nil && len(res.Pairs) == 0 {
		err = store.ErrNoMessage
	}
	if err != nil {
		s.storeError(w, r, "move the message", err)
		return
	}
	writeJSON(w, http.StatusOK, api.Moved{Folder: *req.To, UID: res.Pairs[0].Dst})
}

// handleDeleteMessage is DELETE /api/folders/{id}/messages/{uid}: to Trash, or for good from Trash.
func (s *Server) handleDeleteMessage(w http.ResponseWriter, r *http.Request) {
	id, uid, ok := messageParam(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	mbox, err := s.store.MailboxByID(ctx, id)
	if err != nil {
		s.storeError(w, r, "read the folder", err)
		return
	}
	set := store.UIDSetOf(uid)
	if mbox.Role == store.RoleTrash {
		// \Deleted, then expunge just this message (IMAP UID EXPUNGE semantics, RFC 4315 §2.1).
		res, err := s.store.StoreFlags(ctx, id, set, store.FlagChange{Op: store.FlagsAdd, Flags: store.Flags{System: store.FlagDeleted}})
		if err == nil && len(res.Messages) == 0 {
			err = store.ErrNoMessage
		}
		if err == nil {
			_, err = s.store.ExpungeUIDs(ctx, id, set)
		}
		if err != nil {
			s.storeError(w, r, "delete the message", err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	trash, err := s.store.MailboxByRole(ctx, store.RoleTrash)
	if err != nil {
		s.fail(w, r, "find the Trash folder", err)
		return
	}
	res, err := s.store.Move(ctx, id, set, trash.ID)
	if err == nil && len(res.Pairs) == 0 {
		err = store.ErrNoMessage
	}
	if err != nil {
		s.storeError(w, r, "move the message to Trash", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleOutbox is GET /api/outbox: every outbox item, newest first, with its recipients' states.
func (s *Server) handleOutbox(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	items, err := s.store.OutboxItems(ctx)
	if err != nil {
		s.fail(w, r, "read the outbox", err)
		return
	}
	out := make([]api.OutboxItem, 0, len(items))
	for _, it := range items {
		j := api.OutboxItem{ID: int64(it.ID), Created: it.Created.UTC(), Recipients: []api.OutboxRecipient{}}
		j.Subject = s.outboxSubject(ctx, it)
		for _, rc := range it.Rcpts {
			j.Recipients = append(j.Recipients, api.OutboxRecipient{Address: rc.Rcpt, State: string(rc.State), Error: rc.LastError})
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, api.OutboxItems{Items: out})
}

// outboxSubject returns an outbox item's subject: from its Sent copy's header (cheap), or, if that
// copy has gone, from the item's bytes; "" if neither can be read.
func (s *Server) outboxSubject(ctx context.Context, it store.OutboxItem) string {
	if it.SentMailboxID != 0 {
		if hdr, err := s.store.RawHeader(ctx, it.SentMailboxID, it.SentUID); err == nil {
			return store.ParseHeader(hdr).Get("Subject")
		}
	}
	if br, err := s.store.OutboxReader(ctx, it.ID); err == nil {
		return store.ParseHeader(br.Header()).Get("Subject") // the header only, not the whole message
	}
	return ""
}
