package browser_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/web/ui"
)

// clientCSP is the page policy the node serves the client with (docs/api.md, the web client).
const clientCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// stubAPI is a small in-memory stand-in for the node's API (docs/api.md), enough for the client to run
// against without a network: one user, contacts, conversations whose peers never answer unless the
// test makes them (stub.receive), folders with messages, and the event stream. It serves the embedded
// client with the node's CSP, so a test against it checks the client alone.
type stubAPI struct {
	t        *testing.T
	password string
	me       string

	mu       sync.Mutex
	sessions map[string]bool
	contacts []api.Contact
	convs    map[string]*stubConv
	folders  []*stubFolder
	nextUID  store.UID
	outbox   map[int]string // id → recipient state
	blobs    []api.PendingBlob
	sends    map[int64]api.BlobSend // GET /api/blobs/sent, set by the test (setSend)
	nextOut  int
	subs     map[chan stubEvent]bool
}

// stubConv is a conversation with its messages.
type stubConv struct {
	api.Conversation
	msgs []*api.ChatMessage
}

// stubFolder is a folder with its messages.
type stubFolder struct {
	api.Folder
	msgs []*stubMail
}

// stubMail is a message with its HTML part.
type stubMail struct {
	api.MessageDetail
	html string
}

// stubEvent is an event, encoded when published (under the lock: the data changes later).
type stubEvent struct {
	name string
	data []byte
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newStub starts the stub on 127.0.0.1.
func newStub(t *testing.T, password, me string) (*stubAPI, *httptest.Server) {
	s := &stubAPI{t: t, password: password, me: me, sessions: map[string]bool{}, convs: map[string]*stubConv{}, outbox: map[int]string{}, subs: map[chan stubEvent]bool{}}
	for i, f := range []struct{ name, role string }{{"INBOX", "inbox"}, {"Sent", "sent"}, {"Drafts", "drafts"}, {"Trash", "trash"}, {"Archive", "archive"}, {"Chats", "chats"}} {
		s.folders = append(s.folders, &stubFolder{Folder: api.Folder{ID: int64(i + 1), Name: f.name, Role: f.role}})
	}
	srv := httptest.NewServer(s.handler())
	t.Cleanup(func() {
		s.mu.Lock()
		for c := range s.subs {
			close(c)
		}
		s.subs = map[chan stubEvent]bool{}
		s.mu.Unlock()
		srv.CloseClientConnections()
		srv.Close()
	})
	return s, srv
}

// publish sends an event to every open stream; s.mu is held.
func (s *stubAPI) publish(name string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	for c := range s.subs {
		select {
		case c <- stubEvent{name, b}:
		default:
		}
	}
}

func (s *stubAPI) nameOf(addr string) string {
	for _, c := range s.contacts {
		if c.Address == addr {
			return c.Petname
		}
	}
	return ""
}

func (s *stubAPI) resolve(x string) (string, bool) {
	if strings.Contains(x, "@") {
		return x, true
	}
	for _, c := range s.contacts {
		if c.Petname == x {
			return c.Address, true
		}
	}
	return "", false
}

func stubJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func stubError(w http.ResponseWriter, code int, msg string) {
	stubJSON(w, code, api.Error{Error: msg})
}

func (s *stubAPI) handler() http.Handler {
	mux := http.NewServeMux()
	files := http.FileServerFS(ui.FS)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", clientCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("POST /api/login", func(w http.ResponseWriter, r *http.Request) {
		var b api.Login
		json.NewDecoder(r.Body).Decode(&b)
		if b.Password != s.password {
			stubError(w, 401, "wrong password: use the node's password (printed at start, and in <data-dir>/password)")
			return
		}
		tok := newID()
		s.mu.Lock()
		s.sessions[tok] = true
		s.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "tm_session", Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		w.WriteHeader(204)
	})
	auth := func(h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			c, err := r.Cookie("tm_session")
			s.mu.Lock()
			ok := err == nil && s.sessions[c.Value]
			s.mu.Unlock()
			if !ok {
				stubError(w, 401, "authentication required")
				return
			}
			if r.Method != "GET" && r.Method != "DELETE" && r.ContentLength > 0 && r.Header.Get("Content-Type") != "application/json" {
				stubError(w, 415, "body must be application/json")
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /api/logout", auth(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("tm_session")
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /api/me", auth(func(w http.ResponseWriter, r *http.Request) {
		stubJSON(w, 200, api.Me{Address: s.me})
	}))
	mux.HandleFunc("GET /api/qr", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		fmt.Fprint(w, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4"><rect width="2" height="2"/><rect x="2" y="2" width="2" height="2"/></svg>`)
	}))
	mux.HandleFunc("GET /api/status", auth(func(w http.ResponseWriter, r *http.Request) {
		stubJSON(w, 200, api.Status{Address: s.me, Network: "devnet", Uptime: "1m0s",
			P2P:    p2p.Status{Peers: []p2p.PeerStatus{{ID: "12D3KooWstubpeer0000000001"}, {ID: "12D3KooWstubpeer0000000002"}}, Shards: []uint32{3}, Tips: map[uint32]int{3: 2}, Synced: true},
			Outbox: api.OutboxStatus{Jobs: []api.ProgressJob{}},
			Storage: []api.LightProvider{{Provider: "12D3KooWstubprovider0000001", Connected: true, State: "active",
				UsedBytes: 3 << 20, QuotaBytes: 64 << 20, QuotaPercent: 4, Expires: "2026-12-31T00:00:00Z"}},
			Wallet: api.Wallet{Address: "0x1234567890abcdef1234567890abcdef12345678", ChainID: 1337, BalanceWei: "12500000000000000000",
				Balance: "12.5 IOTA", CheckedAt: "2026-12-06T03:00:00Z"}})
	}))
	mux.HandleFunc("GET /api/peers", auth(func(w http.ResponseWriter, r *http.Request) {
		stubJSON(w, 200, []api.Peer{{ID: "12D3KooWstubpeer0000000001", Direction: "outbound", ConnectedSince: time.Now().Add(-time.Minute), CaughtUp: true, Score: 1.5}})
	}))
	mux.HandleFunc("GET /api/contacts", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		stubJSON(w, 200, api.Contacts{Contacts: append([]api.Contact{}, s.contacts...)})
	}))
	mux.HandleFunc("POST /api/contacts", auth(func(w http.ResponseWriter, r *http.Request) {
		var c api.Contact
		json.NewDecoder(r.Body).Decode(&c)
		s.mu.Lock()
		defer s.mu.Unlock()
		if !strings.HasPrefix(c.Address, "tm1") || !strings.HasSuffix(c.Address, "@tangle") {
			stubError(w, 400, "address: not a tangle address (tm1…@tangle)")
			return
		}
		for _, x := range s.contacts {
			if x.Petname == c.Petname {
				stubError(w, 409, "the petname "+c.Petname+" is taken")
				return
			}
		}
		s.contacts = append(s.contacts, c)
		slices.SortFunc(s.contacts, func(a, b api.Contact) int { return strings.Compare(a.Petname, b.Petname) })
		stubJSON(w, 201, c)
	}))
	mux.HandleFunc("DELETE /api/contacts/{petname}", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := len(s.contacts)
		s.contacts = slices.DeleteFunc(s.contacts, func(c api.Contact) bool { return c.Petname == r.PathValue("petname") })
		if len(s.contacts) == n {
			stubError(w, 404, "no such contact")
			return
		}
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /api/conversations", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		list := api.Conversations{Conversations: []api.Conversation{}}
		for _, c := range s.convs {
			list.Conversations = append(list.Conversations, c.Conversation)
		}
		slices.SortFunc(list.Conversations, func(a, b api.Conversation) int { return b.Updated.Compare(a.Updated) })
		stubJSON(w, 200, list)
	}))
	mux.HandleFunc("POST /api/conversations", auth(func(w http.ResponseWriter, r *http.Request) {
		var b api.NewConversation
		json.NewDecoder(r.Body).Decode(&b)
		s.mu.Lock()
		defer s.mu.Unlock()
		me := api.Member{Address: s.me, Me: true}
		if b.Peer != nil {
			addr, ok := s.resolve(*b.Peer)
			if !ok {
				stubError(w, 400, "peer: no contact named "+*b.Peer)
				return
			}
			for _, c := range s.convs {
				if c.Kind == "direct" && c.Peer == addr {
					stubJSON(w, 200, c.Conversation)
					return
				}
			}
			c := &stubConv{Conversation: api.Conversation{ID: newID(), Kind: "direct", Name: s.nameOf(addr), Peer: addr, Members: []api.Member{{Address: addr, Name: s.nameOf(addr)}, me}, Updated: time.Now()}}
			s.convs[c.ID] = c
			stubJSON(w, 200, c.Conversation)
			return
		}
		name := ""
		if b.Name != nil {
			name = *b.Name
		}
		c := &stubConv{Conversation: api.Conversation{ID: newID(), Kind: "group", Name: name, Updated: time.Now()}}
		for _, m := range b.Members {
			addr, ok := s.resolve(m)
			if !ok {
				stubError(w, 400, "members: no contact named "+m)
				return
			}
			c.Members = append(c.Members, api.Member{Address: addr, Name: s.nameOf(addr)})
		}
		c.Members = append(c.Members, me)
		s.convs[c.ID] = c
		s.publish("conversation", api.ChatEvent{Conversation: c.ID, Info: &c.Conversation})
		stubJSON(w, 201, c.Conversation)
	}))
	conv := func(h func(w http.ResponseWriter, r *http.Request, c *stubConv)) http.HandlerFunc {
		return auth(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			c := s.convs[r.PathValue("id")]
			if c == nil {
				stubError(w, 404, "no such conversation")
				return
			}
			h(w, r, c)
		})
	}
	mux.HandleFunc("GET /api/conversations/{id}", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) { stubJSON(w, 200, c.Conversation) }))
	mux.HandleFunc("GET /api/conversations/{id}/messages", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) {
		h := api.ChatHistory{Messages: []api.ChatMessage{}}
		for _, m := range c.msgs {
			h.Messages = append(h.Messages, *m)
		}
		stubJSON(w, 200, h)
	}))
	mux.HandleFunc("POST /api/conversations/{id}/messages", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) {
		var b api.ChatText
		json.NewDecoder(r.Body).Decode(&b)
		if b.Text == nil || *b.Text == "" {
			stubError(w, 400, "text: empty")
			return
		}
		s.nextUID++
		m := &api.ChatMessage{ID: newID(), Conversation: c.ID, UID: s.nextUID, Kind: "text", From: api.Member{Address: s.me, Me: true}, Mine: true, Text: *b.Text, Sent: time.Now(), Seen: true, Status: "sending"}
		c.msgs = append(c.msgs, m)
		c.Last, c.Updated = m, m.Sent
		s.publish("chat", api.ChatEvent{Conversation: c.ID, Message: m})
		// The "network": sent, then delivered shortly after.
		go func(m api.ChatMessage) {
			for _, st := range []string{"sent", "delivered"} {
				time.Sleep(150 * time.Millisecond)
				s.mu.Lock()
				m.Status = st
				for _, x := range c.msgs {
					if x.ID == m.ID {
						x.Status = st
					}
				}
				s.publish("receipt", api.ChatEvent{Conversation: c.ID, Message: &m})
				s.mu.Unlock()
			}
		}(*m)
		stubJSON(w, 202, m)
	}))
	mux.HandleFunc("POST /api/conversations/{id}/read", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) {
		for _, m := range c.msgs {
			m.Seen = true
		}
		c.Unread = 0
		s.publish("conversation", api.ChatEvent{Conversation: c.ID, Info: &c.Conversation})
		w.WriteHeader(204)
	}))
	mux.HandleFunc("POST /api/conversations/{id}/typing", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) { w.WriteHeader(204) }))
	mux.HandleFunc("PATCH /api/conversations/{id}", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) {
		var b api.Rename
		json.NewDecoder(r.Body).Decode(&b)
		if b.Name != nil {
			c.Name = *b.Name
		}
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /api/folders", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		stubJSON(w, 200, s.folderList())
	}))
	folderOf := func(r *http.Request) *stubFolder {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		for _, f := range s.folders {
			if f.ID == id {
				return f
			}
		}
		return nil
	}
	mux.HandleFunc("GET /api/folders/{id}/messages", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		f := folderOf(r)
		if f == nil {
			stubError(w, 404, "no such folder")
			return
		}
		q := strings.ToLower(r.URL.Query().Get("q"))
		out := api.Messages{Messages: []api.Message{}}
		for i := len(f.msgs) - 1; i >= 0; i-- {
			m := f.msgs[i]
			if q == "" || strings.Contains(strings.ToLower(m.Subject+" "+m.Text), q) {
				out.Messages = append(out.Messages, m.Message)
			}
		}
		stubJSON(w, 200, out)
	}))
	mail := func(h func(w http.ResponseWriter, r *http.Request, f *stubFolder, m *stubMail)) http.HandlerFunc {
		return auth(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			f := folderOf(r)
			uid, _ := strconv.Atoi(r.PathValue("uid"))
			if f != nil {
				for _, m := range f.msgs {
					if m.UID == store.UID(uid) {
						h(w, r, f, m)
						return
					}
				}
			}
			stubError(w, 404, "no such message")
		})
	}
	mux.HandleFunc("GET /api/folders/{id}/messages/{uid}", mail(func(w http.ResponseWriter, r *http.Request, f *stubFolder, m *stubMail) {
		stubJSON(w, 200, m.MessageDetail)
	}))
	mux.HandleFunc("GET /api/folders/{id}/messages/{uid}/html", mail(func(w http.ResponseWriter, r *http.Request, f *stubFolder, m *stubMail) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox allow-popups allow-popups-to-escape-sandbox")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, m.html)
	}))
	mux.HandleFunc("POST /api/folders/{id}/messages/{uid}/flags", mail(func(w http.ResponseWriter, r *http.Request, f *stubFolder, m *stubMail) {
		var b api.FlagChange
		json.NewDecoder(r.Body).Decode(&b)
		for _, x := range b.Add {
			if !slices.Contains(m.Flags, x) {
				m.Flags = append(m.Flags, x)
			}
		}
		m.Flags = slices.DeleteFunc(m.Flags, func(x string) bool { return slices.Contains(b.Remove, x) })
		m.Seen, m.Flagged = slices.Contains(m.Flags, `\Seen`), slices.Contains(m.Flags, `\Flagged`)
		s.publish("folders", s.folderList())
		stubJSON(w, 200, api.Flags{Flags: m.Flags})
	}))
	mux.HandleFunc("POST /api/messages", auth(func(w http.ResponseWriter, r *http.Request) {
		var b api.Compose
		json.NewDecoder(r.Body).Decode(&b)
		s.mu.Lock()
		defer s.mu.Unlock()
		var to []api.Person
		for _, x := range b.To {
			addr, ok := s.resolve(x)
			if !ok {
				stubError(w, 400, "to: no contact named "+x)
				return
			}
			to = append(to, api.Person{Address: addr, Name: s.nameOf(addr)})
		}
		s.nextOut++
		id := s.nextOut
		s.outbox[id] = "pending"
		uid := s.addMail("Sent", &stubMail{MessageDetail: api.MessageDetail{Message: api.Message{From: api.Person{Address: s.me}, To: to, Subject: b.Subject, Seen: true}, Text: b.Text}})
		go func() {
			for i := 1; i <= 5; i++ {
				time.Sleep(60 * time.Millisecond)
				s.mu.Lock()
				s.publish("progress", api.Progress{Jobs: []api.ProgressJob{{OutboxID: int64(id), Recipient: to[0].Address, Kind: "mail", Block: 1, Blocks: 1, Done: uint64(i * 200), Expected: 1000, Finished: i == 5}}})
				if i == 5 {
					s.outbox[id] = "published"
				}
				s.mu.Unlock()
			}
		}()
		stubJSON(w, 202, api.Sent{OutboxID: int64(id), Folder: 2, UID: uid})
	}))
	mux.HandleFunc("GET /api/outbox", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		items := api.OutboxItems{Items: []api.OutboxItem{}}
		for id, st := range s.outbox {
			items.Items = append(items.Items, api.OutboxItem{ID: int64(id), Recipients: []api.OutboxRecipient{{Address: "x", State: st}}})
		}
		stubJSON(w, 200, items)
	}))
	mux.HandleFunc("GET /api/events", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		c := make(chan stubEvent, 100)
		s.mu.Lock()
		s.subs[c] = true
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			if s.subs[c] {
				delete(s.subs, c)
			}
			s.mu.Unlock()
		}()
		send := func(name string, data []byte) {
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
			w.(http.Flusher).Flush()
		}
		hello, _ := json.Marshal(api.Me{Address: s.me})
		send("hello", hello)
		for {
			select {
			case <-r.Context().Done():
				return
			case ev, ok := <-c:
				if !ok {
					return
				}
				send(ev.name, ev.data)
			}
		}
	}))
	mux.HandleFunc("GET /api/blobs", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		stubJSON(w, 200, append([]api.PendingBlob{}, s.blobs...))
	}))
	mux.HandleFunc("GET /api/blobs/sent", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := []api.BlobSend{}
		for _, b := range s.sends {
			out = append(out, b)
		}
		stubJSON(w, 200, out)
	}))
	mux.HandleFunc("POST /api/blobs/{key}/accept", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i := range s.blobs {
			if s.blobs[i].Key == r.PathValue("key") {
				s.blobs[i].Accepted, s.blobs[i].Waiting = true, false
				s.blobs[i].Fetched = s.blobs[i].Size / 4
				stubJSON(w, 200, map[string]bool{"accepted": true})
				return
			}
		}
		stubError(w, 404, "no pending blob mail with that key")
	}))
	mux.HandleFunc("/api/", auth(func(w http.ResponseWriter, r *http.Request) {
		stubError(w, 404, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	}))
	return mux
}

// folderList returns the folders with their counts; s.mu is held.
func (s *stubAPI) folderList() api.Folders {
	out := api.Folders{Folders: []api.Folder{}}
	for _, f := range s.folders {
		unseen := 0
		for _, m := range f.msgs {
			if !m.Seen {
				unseen++
			}
		}
		f.Messages, f.Unseen = uint32(len(f.msgs)), uint32(unseen)
		out.Folders = append(out.Folders, f.Folder)
	}
	return out
}

// addMail files m in the named folder and announces it; s.mu is held.
func (s *stubAPI) addMail(folder string, m *stubMail) store.UID {
	for _, f := range s.folders {
		if f.Name != folder {
			continue
		}
		s.nextUID++
		m.UID, m.Folder, m.Date = s.nextUID, f.ID, time.Now()
		m.Size = int64(len(m.Text))
		if m.Seen {
			m.Flags = []string{`\Seen`}
		} else {
			m.Flags = []string{}
		}
		if m.Cc == nil {
			m.Cc = []api.Person{}
		}
		if m.Attachments == nil {
			m.Attachments = []api.Attachment{}
		}
		m.Preview = m.Text
		if len(m.Preview) > 200 {
			m.Preview = m.Preview[:200]
		}
		m.HasHTML = m.html != ""
		f.msgs = append(f.msgs, m)
		s.publish("mail", api.MailEvent{Folder: f.ID, UID: m.UID})
		s.publish("folders", s.folderList())
		return m.UID
	}
	panic("no folder " + folder)
}

// deliverMail files a message from addr into INBOX.
func (s *stubAPI) deliverMail(from, subject, text, html string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addMail("INBOX", &stubMail{MessageDetail: api.MessageDetail{Message: api.Message{From: api.Person{Address: from, Name: s.nameOf(from)}, To: []api.Person{{Address: s.me}}, Subject: subject}, Text: text}, html: html})
}

// deliverE2EMail files a message from addr into INBOX that the node decrypted with the user's OpenPGP
// key (the detail's e2e fields, docs/protocol.md §16.2).
func (s *stubAPI) deliverE2EMail(from, subject, text, signature string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addMail("INBOX", &stubMail{MessageDetail: api.MessageDetail{Message: api.Message{From: api.Person{Address: from}, To: []api.Person{{Address: s.me}}, Subject: subject},
		Text: text, E2E: "openpgp", E2ESignature: signature}})
}

// receive files a chat message from peer into conversation id, and announces it.
func (s *stubAPI) receive(id, from, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.convs[id]
	s.nextUID++
	m := &api.ChatMessage{ID: newID(), Conversation: id, UID: s.nextUID, Kind: "text", From: api.Member{Address: from, Name: s.nameOf(from)}, Text: text, Sent: time.Now()}
	c.msgs = append(c.msgs, m)
	c.Last, c.Updated = m, m.Sent
	c.Unread++
	s.publish("chat", api.ChatEvent{Conversation: id, Message: m})
	s.publish("conversation", api.ChatEvent{Conversation: id, Info: &c.Conversation})
}

// typing announces that from is typing in conversation id.
func (s *stubAPI) typing(id, from string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publish("typing", api.ChatEvent{Conversation: id, From: &api.Member{Address: from, Name: s.nameOf(from)}})
}

// conversationWith returns the id of the 1:1 conversation with addr, "" if none.
func (s *stubAPI) conversationWith(addr string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.convs {
		if c.Kind == "direct" && c.Peer == addr {
			return c.ID
		}
	}
	return ""
}

// unread is the unread count of conversation id.
func (s *stubAPI) unread(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.convs[id].Unread
}

// offerBlob lists a stranger's large mail as waiting for consent, with its notice in INBOX, and
// returns its key.
func (s *stubAPI) offerBlob(from, subject string, size uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := newID() + newID()
	s.blobs = append(s.blobs, api.PendingBlob{Key: key, Sender: from, Subject: subject, Size: size, Waiting: true,
		Expires: time.Now().Add(96 * time.Hour).UTC().Format(time.RFC3339)})
	s.addMail("INBOX", &stubMail{MessageDetail: api.MessageDetail{Message: api.Message{From: api.Person{Address: "postmaster@tangle"},
		To: []api.Person{{Address: s.me}}, Subject: "Large mail waiting: " + subject}, Text: from + ", who is not one of your contacts, sent you a large mail."}})
	return key
}

// blobAccepted reports whether the pending blob mail key was accepted.
func (s *stubAPI) blobAccepted(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.blobs {
		if b.Key == key {
			return b.Accepted
		}
	}
	return false
}

// fileBlob ends the fetch of key: the mail is filed in INBOX and no longer pending.
func (s *stubAPI) fileBlob(key, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.blobs {
		if b.Key == key {
			s.blobs = append(s.blobs[:i], s.blobs[i+1:]...)
			s.addMail("INBOX", &stubMail{MessageDetail: api.MessageDetail{Message: api.Message{From: api.Person{Address: b.Sender},
				To: []api.Person{{Address: s.me}}, Subject: b.Subject}, Text: text}})
			return
		}
	}
}

// lastOutboxID is the outbox id of the last message sent.
func (s *stubAPI) lastOutboxID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.nextOut)
}

// setSend sets the progress GET /api/blobs/sent reports for a large mail.
func (s *stubAPI) setSend(b api.BlobSend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sends == nil {
		s.sends = map[int64]api.BlobSend{}
	}
	s.sends[b.OutboxID] = b
}
