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
	contacts []stubContact
	convs    map[string]*stubConv
	folders  []*stubFolder
	nextUID  int
	outbox   map[int]string // id → recipient state
	nextOut  int
	subs     map[chan stubEvent]bool
}

type stubContact struct {
	Petname string `json:"petname"`
	Address string `json:"address"`
}

type stubPerson struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
	Me      bool   `json:"me,omitempty"`
}

type stubConv struct {
	ID      string       `json:"id"`
	Kind    string       `json:"kind"`
	Name    string       `json:"name"`
	Peer    string       `json:"peer,omitempty"`
	Members []stubPerson `json:"members"`
	Left    bool         `json:"left"`
	Unread  int          `json:"unread"`
	Last    *stubChat    `json:"last,omitempty"`
	Updated time.Time    `json:"updated"`
	msgs    []*stubChat
}

type stubChat struct {
	ID           string     `json:"id"`
	Conversation string     `json:"conversation"`
	UID          int        `json:"uid"`
	Kind         string     `json:"kind"`
	From         stubPerson `json:"from"`
	Mine         bool       `json:"mine"`
	Text         string     `json:"text"`
	Sent         time.Time  `json:"sent"`
	Seen         bool       `json:"seen"`
	Status       string     `json:"status,omitempty"`
}

type stubFolder struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
	msgs []*stubMail
}

type stubMail struct {
	UID     int          `json:"uid"`
	Folder  int          `json:"folder"`
	From    stubPerson   `json:"from"`
	To      []stubPerson `json:"to"`
	Cc      []stubPerson `json:"cc"`
	Subject string       `json:"subject"`
	Date    time.Time    `json:"date"`
	Size    int          `json:"size"`
	Flags   []string     `json:"flags"`
	Seen    bool         `json:"seen"`
	Flagged bool         `json:"flagged"`
	Preview string       `json:"preview"`
	Text    string       `json:"text"`
	HasHTML bool         `json:"has_html"`
	html    string
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
		s.folders = append(s.folders, &stubFolder{ID: i + 1, Name: f.name, Role: f.role})
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
	stubJSON(w, code, map[string]string{"error": msg})
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
		var b struct{ Password string }
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
		stubJSON(w, 200, map[string]string{"address": s.me})
	}))
	mux.HandleFunc("GET /api/qr", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		fmt.Fprint(w, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4"><rect width="2" height="2"/><rect x="2" y="2" width="2" height="2"/></svg>`)
	}))
	mux.HandleFunc("GET /api/status", auth(func(w http.ResponseWriter, r *http.Request) {
		stubJSON(w, 200, map[string]any{"address": s.me, "network": "devnet", "peers": 2, "shards": []int{3}, "tips": map[string]int{"3": 2}, "synced": true, "outbox": map[string]any{"waiting_for_peers": false, "jobs": []any{}}})
	}))
	mux.HandleFunc("GET /api/peers", auth(func(w http.ResponseWriter, r *http.Request) {
		stubJSON(w, 200, []map[string]any{{"id": "12D3KooWstubpeer0000000001", "direction": "outbound", "connected_since": time.Now().Add(-time.Minute), "caught_up": true, "score": 1.5}})
	}))
	mux.HandleFunc("GET /api/contacts", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		stubJSON(w, 200, map[string]any{"contacts": append([]stubContact{}, s.contacts...)})
	}))
	mux.HandleFunc("POST /api/contacts", auth(func(w http.ResponseWriter, r *http.Request) {
		var c stubContact
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
		slices.SortFunc(s.contacts, func(a, b stubContact) int { return strings.Compare(a.Petname, b.Petname) })
		stubJSON(w, 201, c)
	}))
	mux.HandleFunc("DELETE /api/contacts/{petname}", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := len(s.contacts)
		s.contacts = slices.DeleteFunc(s.contacts, func(c stubContact) bool { return c.Petname == r.PathValue("petname") })
		if len(s.contacts) == n {
			stubError(w, 404, "no such contact")
			return
		}
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /api/conversations", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var list []*stubConv
		for _, c := range s.convs {
			list = append(list, c)
		}
		slices.SortFunc(list, func(a, b *stubConv) int { return b.Updated.Compare(a.Updated) })
		stubJSON(w, 200, map[string]any{"conversations": list})
	}))
	mux.HandleFunc("POST /api/conversations", auth(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			Peer    string
			Name    string
			Members []string
		}
		json.NewDecoder(r.Body).Decode(&b)
		s.mu.Lock()
		defer s.mu.Unlock()
		me := stubPerson{Address: s.me, Me: true}
		if b.Peer != "" {
			addr, ok := s.resolve(b.Peer)
			if !ok {
				stubError(w, 400, "peer: no contact named "+b.Peer)
				return
			}
			for _, c := range s.convs {
				if c.Kind == "direct" && c.Peer == addr {
					stubJSON(w, 200, c)
					return
				}
			}
			c := &stubConv{ID: newID(), Kind: "direct", Name: s.nameOf(addr), Peer: addr, Members: []stubPerson{{Address: addr, Name: s.nameOf(addr)}, me}, Updated: time.Now()}
			s.convs[c.ID] = c
			stubJSON(w, 200, c)
			return
		}
		c := &stubConv{ID: newID(), Kind: "group", Name: b.Name, Updated: time.Now()}
		for _, m := range b.Members {
			addr, ok := s.resolve(m)
			if !ok {
				stubError(w, 400, "members: no contact named "+m)
				return
			}
			c.Members = append(c.Members, stubPerson{Address: addr, Name: s.nameOf(addr)})
		}
		c.Members = append(c.Members, me)
		s.convs[c.ID] = c
		s.publish("conversation", map[string]any{"conversation": c.ID, "info": c})
		stubJSON(w, 201, c)
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
	mux.HandleFunc("GET /api/conversations/{id}", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) { stubJSON(w, 200, c) }))
	mux.HandleFunc("GET /api/conversations/{id}/messages", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) {
		stubJSON(w, 200, map[string]any{"messages": append([]*stubChat{}, c.msgs...), "more": false})
	}))
	mux.HandleFunc("POST /api/conversations/{id}/messages", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) {
		var b struct{ Text string }
		json.NewDecoder(r.Body).Decode(&b)
		if b.Text == "" {
			stubError(w, 400, "text: empty")
			return
		}
		s.nextUID++
		m := &stubChat{ID: newID(), Conversation: c.ID, UID: s.nextUID, Kind: "text", From: stubPerson{Address: s.me, Me: true}, Mine: true, Text: b.Text, Sent: time.Now(), Seen: true, Status: "sending"}
		c.msgs = append(c.msgs, m)
		c.Last, c.Updated = m, m.Sent
		s.publish("chat", map[string]any{"conversation": c.ID, "message": m})
		// The "network": sent, then delivered shortly after.
		go func(m stubChat) {
			for _, st := range []string{"sent", "delivered"} {
				time.Sleep(150 * time.Millisecond)
				s.mu.Lock()
				m.Status = st
				for _, x := range c.msgs {
					if x.ID == m.ID {
						x.Status = st
					}
				}
				s.publish("receipt", map[string]any{"conversation": c.ID, "message": m})
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
		s.publish("conversation", map[string]any{"conversation": c.ID, "info": c})
		w.WriteHeader(204)
	}))
	mux.HandleFunc("POST /api/conversations/{id}/typing", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) { w.WriteHeader(204) }))
	mux.HandleFunc("PATCH /api/conversations/{id}", conv(func(w http.ResponseWriter, r *http.Request, c *stubConv) {
		var b struct{ Name string }
		json.NewDecoder(r.Body).Decode(&b)
		c.Name = b.Name
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /api/folders", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		stubJSON(w, 200, map[string]any{"folders": s.folderList()})
	}))
	folderOf := func(r *http.Request) *stubFolder {
		id, _ := strconv.Atoi(r.PathValue("id"))
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
		out := []*stubMail{}
		for i := len(f.msgs) - 1; i >= 0; i-- {
			m := f.msgs[i]
			if q == "" || strings.Contains(strings.ToLower(m.Subject+" "+m.Text), q) {
				out = append(out, m)
			}
		}
		stubJSON(w, 200, map[string]any{"messages": out, "more": false})
	}))
	mail := func(h func(w http.ResponseWriter, r *http.Request, f *stubFolder, m *stubMail)) http.HandlerFunc {
		return auth(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			defer s.mu.Unlock()
			f := folderOf(r)
			uid, _ := strconv.Atoi(r.PathValue("uid"))
			if f != nil {
				for _, m := range f.msgs {
					if m.UID == uid {
						h(w, r, f, m)
						return
					}
				}
			}
			stubError(w, 404, "no such message")
		})
	}
	mux.HandleFunc("GET /api/folders/{id}/messages/{uid}", mail(func(w http.ResponseWriter, r *http.Request, f *stubFolder, m *stubMail) { stubJSON(w, 200, m) }))
	mux.HandleFunc("GET /api/folders/{id}/messages/{uid}/html", mail(func(w http.ResponseWriter, r *http.Request, f *stubFolder, m *stubMail) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox allow-popups allow-popups-to-escape-sandbox")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, m.html)
	}))
	mux.HandleFunc("POST /api/folders/{id}/messages/{uid}/flags", mail(func(w http.ResponseWriter, r *http.Request, f *stubFolder, m *stubMail) {
		var b struct{ Add, Remove []string }
		json.NewDecoder(r.Body).Decode(&b)
		for _, x := range b.Add {
			if !slices.Contains(m.Flags, x) {
				m.Flags = append(m.Flags, x)
			}
		}
		m.Flags = slices.DeleteFunc(m.Flags, func(x string) bool { return slices.Contains(b.Remove, x) })
		m.Seen, m.Flagged = slices.Contains(m.Flags, `\Seen`), slices.Contains(m.Flags, `\Flagged`)
		s.publish("folders", map[string]any{"folders": s.folderList()})
		stubJSON(w, 200, map[string]any{"flags": m.Flags})
	}))
	mux.HandleFunc("POST /api/messages", auth(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			To, Cc  []string
			Subject string
			Text    string
		}
		json.NewDecoder(r.Body).Decode(&b)
		s.mu.Lock()
		defer s.mu.Unlock()
		var to []stubPerson
		for _, x := range b.To {
			addr, ok := s.resolve(x)
			if !ok {
				stubError(w, 400, "to: no contact named "+x)
				return
			}
			to = append(to, stubPerson{Address: addr, Name: s.nameOf(addr)})
		}
		s.nextOut++
		id := s.nextOut
		s.outbox[id] = "pending"
		uid := s.addMail("Sent", &stubMail{From: stubPerson{Address: s.me}, To: to, Subject: b.Subject, Text: b.Text, Seen: true})
		go func() {
			for i := 1; i <= 5; i++ {
				time.Sleep(60 * time.Millisecond)
				s.mu.Lock()
				s.publish("progress", map[string]any{"jobs": []map[string]any{{"outbox_id": id, "rcpt": to[0].Address, "kind": "mail", "block": 1, "blocks": 1, "done": i * 200, "expected": 1000, "finished": i == 5}}, "waiting_for_peers": false})
				if i == 5 {
					s.outbox[id] = "published"
				}
				s.mu.Unlock()
			}
		}()
		stubJSON(w, 202, map[string]any{"outbox_id": id, "folder": 2, "uid": uid})
	}))
	mux.HandleFunc("GET /api/outbox", auth(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		items := []map[string]any{}
		for id, st := range s.outbox {
			items = append(items, map[string]any{"id": id, "subject": "", "recipients": []map[string]any{{"address": "x", "state": st, "error": ""}}})
		}
		stubJSON(w, 200, map[string]any{"items": items})
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
		hello, _ := json.Marshal(map[string]string{"address": s.me})
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
	mux.HandleFunc("/api/", auth(func(w http.ResponseWriter, r *http.Request) {
		stubError(w, 404, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	}))
	return mux
}

// folderList returns the folders with their counts; s.mu is held.
func (s *stubAPI) folderList() []map[string]any {
	var out []map[string]any
	for _, f := range s.folders {
		unseen := 0
		for _, m := range f.msgs {
			if !m.Seen {
				unseen++
			}
		}
		out = append(out, map[string]any{"id": f.ID, "name": f.Name, "role": f.Role, "messages": len(f.msgs), "unseen": unseen})
	}
	return out
}

// addMail files m in the named folder and announces it; s.mu is held.
func (s *stubAPI) addMail(folder string, m *stubMail) int {
	for _, f := range s.folders {
		if f.Name != folder {
			continue
		}
		s.nextUID++
		m.UID, m.Folder, m.Date = s.nextUID, f.ID, time.Now()
		m.Size = len(m.Text)
		if m.Seen {
			m.Flags = []string{`\Seen`}
		} else {
			m.Flags = []string{}
		}
		if m.Cc == nil {
			m.Cc = []stubPerson{}
		}
		m.Preview = m.Text
		if len(m.Preview) > 200 {
			m.Preview = m.Preview[:200]
		}
		m.HasHTML = m.html != ""
		f.msgs = append(f.msgs, m)
		s.publish("mail", map[string]any{"folder": f.ID, "uid": m.UID})
		s.publish("folders", map[string]any{"folders": s.folderList()})
		return m.UID
	}
	panic("no folder " + folder)
}

// deliverMail files a message from addr into INBOX.
func (s *stubAPI) deliverMail(from, subject, text, html string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addMail("INBOX", &stubMail{From: stubPerson{Address: from, Name: s.nameOf(from)}, To: []stubPerson{{Address: s.me}}, Subject: subject, Text: text, html: html})
}

// receive files a chat message from peer into conversation id, and announces it.
func (s *stubAPI) receive(id, from, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.convs[id]
	s.nextUID++
	m := &stubChat{ID: newID(), Conversation: id, UID: s.nextUID, Kind: "text", From: stubPerson{Address: from, Name: s.nameOf(from)}, Text: text, Sent: time.Now()}
	c.msgs = append(c.msgs, m)
	c.Last, c.Updated = m, m.Sent
	c.Unread++
	s.publish("chat", map[string]any{"conversation": id, "message": m})
	s.publish("conversation", map[string]any{"conversation": id, "info": c})
}

// typing announces that from is typing in conversation id.
func (s *stubAPI) typing(id, from string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publish("typing", map[string]any{"conversation": id, "from": stubPerson{Address: from, Name: s.nameOf(from)}})
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
