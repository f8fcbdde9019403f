package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// fakeAPI is an httptest server that answers like a node's API (docs/api.md) for the chat and
// contacts commands, records every request, and lets a test push events into GET /api/events.
type fakeAPI struct {
	t        *testing.T
	srv      *httptest.Server
	password string

	mu       sync.Mutex
	reqs     []fakeRequest
	contacts []api.Contact
	convs    []api.Conversation
	history  map[string][]api.ChatMessage // by conversation id
	nextUID  store.UID
	streams  int            // open event streams
	opened   int            // event streams opened so far
	failNext map[string]int // "METHOD path" → status to answer once

	events chan string   // raw event-stream text for the open stream
	drop   chan struct{} // ends the open stream
}

// fakeRequest is one request as the server saw it.
type fakeRequest struct {
	Method, Path, Query string
	Auth, ContentType   string
	Accept              string
	Body                string
}

func (r fakeRequest) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	return s
}

const (
	fakePassword = "s3cret-password"
	aliceAddr    = "tm1alicealicealicealicealicealice@tangle"
	bobAddr      = "tm1bobbobbobbobbobbobbobbobbobbobbob@tangle"
	carolAddr    = "tm1carolcarolcarolcarolcarolcarol@tangle"
	directID     = "3f00000000000000000000000000000a"
	groupID      = "6b00000000000000000000000000000b"
)

var fakeT0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{
		t: t, password: fakePassword,
		contacts: []api.Contact{{Petname: "bob", Address: bobAddr}, {Petname: "carol", Address: carolAddr}},
		history:  map[string][]api.ChatMessage{},
		nextUID:  10,
		failNext: map[string]int{},
		events:   make(chan string),
		drop:     make(chan struct{}),
	}
	me := api.Member{Address: aliceAddr, Me: true}
	bob := api.Member{Address: bobAddr, Name: "bob"}
	carol := api.Member{Address: carolAddr, Name: "carol"}
	f.convs = []api.Conversation{
		{ID: directID, Kind: "direct", Name: "bob", Peer: bobAddr, Members: []api.Member{bob, me}, Unread: 1, Updated: fakeT0},
		{ID: groupID, Kind: "group", Name: "Trip", Members: []api.Member{bob, carol, me}, Updated: fakeT0},
	}
	f.history[directID] = []api.ChatMessage{
		{ID: "m1", Conversation: directID, UID: 1, Kind: "text", From: me, Mine: true, Text: "hello bob", Sent: fakeT0, Seen: true, Status: "read"},
		{ID: "m2", Conversation: directID, UID: 2, Kind: "text", From: bob, Text: "hi alice", Sent: fakeT0.Add(time.Minute), Seen: false},
	}
	f.history[groupID] = []api.ChatMessage{
		{ID: "g1", Conversation: groupID, UID: 3, Kind: "event", From: bob, Text: "bob added carol", Sent: fakeT0, Seen: true},
		{ID: "g2", Conversation: groupID, UID: 4, Kind: "text", From: carol, Text: "hi all", Sent: fakeT0, Seen: true},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/conversations", f.auth(f.openConversation))
	mux.HandleFunc("GET /api/conversations", f.auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeTestJSON(w, 200, map[string]any{"conversations": f.convs})
	}))
	mux.HandleFunc("GET /api/conversations/{id}", f.auth(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := f.conv(r.PathValue("id")); ok {
			writeTestJSON(w, 200, c)
			return
		}
		writeTestJSON(w, 404, api.Error{Error: "no such conversation"})
	}))
	mux.HandleFunc("GET /api/conversations/{id}/messages", f.auth(f.listMessages))
	mux.HandleFunc("POST /api/conversations/{id}/messages", f.auth(f.sendMessage))
	mux.HandleFunc("POST /api/conversations/{id}/read", f.auth(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /api/conversations/{id}/typing", f.auth(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /api/events", f.auth(f.serveEvents))
	mux.HandleFunc("GET /api/contacts", f.auth(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeTestJSON(w, 200, map[string]any{"contacts": f.contacts})
	}))
	mux.HandleFunc("POST /api/contacts", f.auth(f.addContact))
	mux.HandleFunc("DELETE /api/contacts/{petname}", f.auth(f.removeContact))
	mux.HandleFunc("/api/", f.auth(func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 404, api.Error{Error: "no such API endpoint: " + r.Method + " " + r.URL.Path})
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	return f
}

// dataDir is a data directory whose api.json and password point at the fake.
func (f *fakeAPI) dataDir() string {
	return fakeDataDir(f.t, f.srv.URL, f.password)
}

func fakeDataDir(t *testing.T, url, password string) string {
	t.Helper()
	dir := t.TempDir()
	info, _ := json.Marshal(node.APIInfo{URL: url, PID: 1})
	if err := os.WriteFile(filepath.Join(dir, node.APIFile), info, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, node.PasswordFile), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func writeTestJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		req := fakeRequest{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"),
			Accept: r.Header.Get("Accept"), Body: string(body)}
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		status := f.failNext[r.Method+" "+r.URL.Path]
		delete(f.failNext, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+f.password {
			writeTestJSON(w, 401, api.Error{Error: "authentication required: use the node's password"})
			return
		}
		if status != 0 {
			writeTestJSON(w, status, api.Error{Error: "injected failure " + strconv.Itoa(status)})
			return
		}
		if (r.Method == "POST" || r.Method == "PATCH") && r.Header.Get("Content-Type") != "application/json" {
			writeTestJSON(w, 415, api.Error{Error: "want application/json"})
			return
		}
		h(w, r)
	}
}

func (f *fakeAPI) conv(id string) (api.Conversation, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.convs {
		if c.ID == id {
			return c, true
		}
	}
	return api.Conversation{}, false
}

func (f *fakeAPI) openConversation(w http.ResponseWriter, r *http.Request) {
	var in api.NewConversation
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Peer == nil || *in.Peer == "" {
		writeTestJSON(w, 400, api.Error{Error: "peer: missing"})
		return
	}
	if *in.Peer != "bob" && *in.Peer != bobAddr {
		writeTestJSON(w, 404, api.Error{Error: "no contact named " + *in.Peer})
		return
	}
	c, _ := f.conv(directID)
	writeTestJSON(w, 200, c)
}

func (f *fakeAPI) listMessages(w http.ResponseWriter, r *http.Request) {
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit < 1 || limit > 500 {
		writeTestJSON(w, 400, api.Error{Error: "limit: want 1…500"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.history[r.PathValue("id")]
	if !ok {
		writeTestJSON(w, 404, api.Error{Error: "no such conversation"})
		return
	}
	more := len(h) > limit
	if more {
		h = h[len(h)-limit:]
	}
	writeTestJSON(w, 200, api.ChatHistory{Messages: h, More: more})
}

func (f *fakeAPI) sendMessage(w http.ResponseWriter, r *http.Request) {
	var in api.ChatText
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Text == nil || *in.Text == "" || len(*in.Text) > 4000 {
		writeTestJSON(w, 400, api.Error{Error: "text: want 1…4000 bytes"})
		return
	}
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextUID++
	m := api.ChatMessage{ID: fmt.Sprintf("s%d", f.nextUID), Conversation: id, UID: f.nextUID, Kind: "text",
		From: api.Member{Address: aliceAddr, Me: true}, Mine: true, Text: *in.Text, Sent: time.Now(), Seen: true, Status: "sending"}
	f.history[id] = append(f.history[id], m)
	writeTestJSON(w, 202, m)
}

func (f *fakeAPI) serveEvents(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.streams++
	f.opened++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.streams--
		f.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	fl := w.(http.Flusher)
	// A short reconnection time keeps the reconnection tests fast; the comment is what keep-alives are.
	fmt.Fprintf(w, "retry: 20\n: welcome\n\nevent: hello\ndata: {\"address\": %q}\n\n", aliceAddr)
	fl.Flush()
	for {
		select {
		case raw := <-f.events:
			io.WriteString(w, raw)
			fl.Flush()
		case <-f.drop:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (f *fakeAPI) addContact(w http.ResponseWriter, r *http.Request) {
	var c api.Contact
	if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
		writeTestJSON(w, 400, api.Error{Error: "not JSON"})
		return
	}
	if !strings.HasPrefix(c.Address, "tm1") {
		writeTestJSON(w, 400, api.Error{Error: "address: not a tanglemail address (tm1…@tangle)"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.contacts {
		if o.Petname == c.Petname {
			writeTestJSON(w, 409, api.Error{Error: "petname taken"})
			return
		}
	}
	f.contacts = append(f.contacts, c)
	writeTestJSON(w, 201, c)
}

func (f *fakeAPI) removeContact(w http.ResponseWriter, r *http.Request) {
	pet := r.PathValue("petname")
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, o := range f.contacts {
		if o.Petname == pet {
			f.contacts = append(f.contacts[:i], f.contacts[i+1:]...)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeTestJSON(w, 404, api.Error{Error: "no contact named " + pet})
}

// push writes raw event-stream text to the open event stream.
func (f *fakeAPI) push(raw string) {
	f.t.Helper()
	select {
	case f.events <- raw:
	case <-time.After(10 * time.Second):
		f.t.Fatalf("no event stream took %q within 10 s", raw)
	}
}

// pushEvent sends one event with JSON data.
func (f *fakeAPI) pushEvent(typ string, data any) {
	f.t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		f.t.Fatal(err)
	}
	f.push("event: " + typ + "\ndata: " + string(b) + "\n\n")
}

func (f *fakeAPI) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.reqs...)
}

// requestsTo are the recorded requests whose "METHOD path" is key.
func (f *fakeAPI) requestsTo(key string) []fakeRequest {
	var out []fakeRequest
	for _, r := range f.requests() {
		if r.Method+" "+r.Path == key {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeAPI) openStreams() (open, opened int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streams, f.opened
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, 10*time.Second, cond)
}
