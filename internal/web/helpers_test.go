package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/chat"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/store"
)

const testPassword = "s3cret-password"

// fakeBackend is the node as the API sees it.
type fakeBackend struct {
	mu       sync.Mutex
	progress *api.Progress
}

func (*fakeBackend) Status() api.Status {
	return api.Status{Network: "test", P2P: p2p.Status{Blocks: 7}}
}
func (*fakeBackend) Peers() []api.Peer { return []api.Peer{{ID: "peer-a"}} }
func (*fakeBackend) ClientSettings() ClientSettings {
	return ClientSettings{Address: "tm1x@tangle", IMAP: "127.0.0.1:1143", SMTP: "127.0.0.1:1587"}
}

func (b *fakeBackend) Progress() *api.Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.progress
}

func (b *fakeBackend) Metrics() prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	peers := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tanglemail_peers", Help: "Connected peers."})
	peers.Set(3)
	mbs := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tanglemail_mailbox_messages", Help: "Messages per mailbox."},
		[]string{"mailbox"})
	mbs.WithLabelValues("INBOX").Set(2)
	mbs.WithLabelValues("Grüße \"x\"\n\u2028").Set(0.5)
	filed := prometheus.NewCounter(prometheus.CounterOpts{Name: "tanglemail_inbox_filed_total", Help: "Envelopes filed.\nSecond line."})
	filed.Add(1e6)
	reg.MustRegister(peers, mbs, filed)
	return reg
}

func (b *fakeBackend) setProgress(p *api.Progress) {
	b.mu.Lock()
	b.progress = p
	b.mu.Unlock()
}

// env is a server on a real store with a fake backend and a fake chat service.
type env struct {
	t     *testing.T
	srv   *Server
	hs    *httptest.Server
	store *store.Store
	chat  *fakeChat
	be    *fakeBackend
	me    string // the node's address
}

type envConfig struct {
	blobs     Blobs // Config.Blobs
	noChat    bool
	storeOpts []store.Option
	tune      func(*Server)
	hosts     []string // Config.Hosts
	wallet    Wallet   // Config.Wallet
}

func newEnv(t *testing.T, opts ...func(*envConfig)) *env {
	t.Helper()
	var ec envConfig
	for _, o := range opts {
		o(&ec)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "mail.db"), ec.storeOpts...)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, be: &fakeBackend{}, me: newAddress(t)}
	cfg := Config{Backend: e.be, Store: st, Address: e.me, Password: testPassword, Penalty: penaltytest.Instant()}
	cfg.Blobs = ec.blobs
	if !ec.noChat {
		e.chat = newFakeChat()
		cfg.Chat = e.chat
	}
	cfg.Hosts = ec.hosts
	cfg.Wallet = ec.wallet
	e.srv = New(cfg)
	if ec.tune != nil {
		ec.tune(e.srv)
	}
	e.hs = httptest.NewServer(e.srv.Handler())
	t.Cleanup(func() {
		e.srv.Close()
		e.hs.Close()
		st.Close()
	})
	return e
}

func withoutChat(c *envConfig) { c.noChat = true }

func newAddress(t testing.TB) string {
	t.Helper()
	id, err := identity.Generate(8)
	if err != nil {
		t.Fatal(err)
	}
	return id.Address().Mail()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// resp is an answer of the server.
type resp struct {
	code int
	hdr  http.Header
	body []byte
}

func (r *resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d is not the JSON expected: %v\n%s", r.code, err, r.body)
	}
}

// errMsg returns the {"error"} text of the answer (failing if it has none).
func (r *resp) errMsg(t testing.TB) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	r.decode(t, &e)
	if e.Error == "" {
		t.Fatalf("answer %d has no error text: %s", r.code, r.body)
	}
	return e.Error
}

// mustErr checks that the answer's {"error"} text contains has.
func (r *resp) mustErr(t testing.TB, has string) {
	t.Helper()
	if msg := r.errMsg(t); !strings.Contains(msg, has) {
		t.Fatalf("error %q, want %q in it", msg, has)
	}
}

// failed reports whether the answer is an error (not 2xx), checking then that its text contains has.
func (r *resp) failed(t testing.TB, has string) bool {
	t.Helper()
	if r.code < 300 {
		return false
	}
	r.mustErr(t, has)
	return true
}

// reqOpt changes a request before it is sent.
type reqOpt func(*http.Request)

func noAuth(r *http.Request) { r.Header.Del("Authorization") }

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func withCookie(token string) reqOpt {
	return func(r *http.Request) {
		r.Header.Del("Authorization")
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
	}
}

// call sends a request with the password as Bearer. body is sent as is if it is a string or
// []byte, as JSON otherwise (nil: no body); a body gets Content-Type: application/json unless an
// option changes it.
func (e *env) call(method, path string, body any, opts ...reqOpt) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctxT(e.t), method, e.hs.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testPassword)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	res, err := e.hs.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &resp{code: res.StatusCode, hdr: res.Header, body: b}
}

// mustCode fails unless the answer has the status.
func (r *resp) mustCode(t testing.TB, code int) *resp {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d: %s", r.code, code, r.body)
	}
	return r
}

// folder returns the id of the folder with the role.
func (e *env) folder(role store.Role) store.MailboxID {
	e.t.Helper()
	m, err := e.store.MailboxByRole(ctxT(e.t), role)
	if err != nil {
		e.t.Fatal(err)
	}
	return m.ID
}

// deliver appends a message to a folder and returns its UID.
func (e *env) deliver(folder store.MailboxID, raw string, flags ...string) store.UID {
	e.t.Helper()
	f, err := store.ParseFlags(flags...)
	if err != nil {
		e.t.Fatal(err)
	}
	a, err := e.store.Append(ctxT(e.t), store.NewMessage{MailboxID: folder, Raw: []byte(raw), Flags: f})
	if err != nil {
		e.t.Fatal(err)
	}
	return a.UID
}

// simpleMail is a small text message.
func simpleMail(from, to, subject, body string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") +
		"@tangle>\r\n\r\n" + body
}

// fakeChat is an in-memory chat service.
type fakeChat struct {
	mu    sync.Mutex
	convs map[string]*chat.Conversation
	msgs  map[string][]chat.Message
	calls []string
	subs  map[chan chat.Event]struct{}
	uid   store.UID
	fail  error // returned by every call when set

	unsubscribed chan struct{} // a value when a subscription ends
}

func newFakeChat() *fakeChat {
	return &fakeChat{convs: map[string]*chat.Conversation{}, msgs: map[string][]chat.Message{},
		subs: map[chan chat.Event]struct{}{}, unsubscribed: make(chan struct{}, 100)}
}

func hexID(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

func (f *fakeChat) record(format string, args ...any) error {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.fail
}

func (f *fakeChat) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeChat) conv(id string) (*chat.Conversation, error) {
	c := f.convs[id]
	if c == nil {
		return nil, fmt.Errorf("%w: %s", chat.ErrNotFound, id)
	}
	return c, nil
}

func (f *fakeChat) Conversations(ctx context.Context) ([]chat.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Conversations"); err != nil {
		return nil, err
	}
	var out []chat.Conversation
	for _, c := range f.convs {
		out = append(out, *c)
	}
	return out, nil
}

func (f *fakeChat) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Conversation %s", id); err != nil {
		return chat.Conversation{}, err
	}
	c, err := f.conv(id)
	if err != nil {
		return chat.Conversation{}, err
	}
	return *c, nil
}

func (f *fakeChat) Direct(ctx context.Context, peer string) (chat.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Direct %s", peer); err != nil {
		return chat.Conversation{}, err
	}
	if peer == "nobody" {
		return chat.Conversation{}, fmt.Errorf("%w: nobody is neither a petname nor an address", chat.ErrInvalid)
	}
	id := hexID("direct " + peer)
	if f.convs[id] == nil {
		f.convs[id] = &chat.Conversation{ID: id, Kind: chat.KindDirect, Name: peer, Peer: peer,
			Members: []chat.Member{{Address: peer}, {Address: "me", Me: true}}, Updated: time.Now().UTC()}
	}
	return *f.convs[id], nil
}

func (f *fakeChat) CreateGroup(ctx context.Context, name string, members []string) (chat.Conversation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("CreateGroup %s %v", name, members); err != nil {
		return chat.Conversation{}, err
	}
	id := hexID(fmt.Sprintf("group %s %d", name, len(f.convs)))
	c := &chat.Conversation{ID: id, Kind: chat.KindGroup, Name: name, Updated: time.Now().UTC()}
	for _, m := range members {
		c.Members = append(c.Members, chat.Member{Address: m})
	}
	f.convs[id] = c
	return *c, nil
}

func (f *fakeChat) change(id string, what string, apply func(c *chat.Conversation)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("%s %s", what, id); err != nil {
		return err
	}
	c, err := f.conv(id)
	if err != nil {
		return err
	}
	if c.Left {
		return fmt.Errorf("%w: you left this group", chat.ErrNotMember)
	}
	apply(c)
	return nil
}

func (f *fakeChat) AddMember(ctx context.Context, id, member string) error {
	return f.change(id, "AddMember "+member, func(c *chat.Conversation) {
		c.Members = append(c.Members, chat.Member{Address: member})
	})
}

func (f *fakeChat) RemoveMember(ctx context.Context, id, member string) error {
	return f.change(id, "RemoveMember "+member, func(c *chat.Conversation) {})
}

func (f *fakeChat) Leave(ctx context.Context, id string) error {
	return f.change(id, "Leave", func(c *chat.Conversation) { c.Left = true })
}

func (f *fakeChat) Rename(ctx context.Context, id, name string) error {
	return f.change(id, "Rename "+name, func(c *chat.Conversation) { c.Name = name })
}

func (f *fakeChat) Send(ctx context.Context, id, text string) (chat.Message, error) {
	var m chat.Message
	err := f.change(id, "Send", func(c *chat.Conversation) {
		f.uid++
		m = chat.Message{ID: hexID(fmt.Sprint("msg", f.uid)), Conversation: id, UID: f.uid, Kind: "text",
			From: chat.Member{Address: "me", Me: true}, Mine: true, Text: text, Sent: time.Now().UTC(),
			Status: chat.StatusSending}
		f.msgs[id] = append(f.msgs[id], m)
	})
	return m, err
}

func (f *fakeChat) History(ctx context.Context, id string, before store.UID, limit int) ([]chat.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("History %s %d %d", id, before, limit); err != nil {
		return nil, err
	}
	if _, err := f.conv(id); err != nil {
		return nil, err
	}
	var out []chat.Message
	for _, m := range f.msgs[id] {
		if before == 0 || m.UID < before {
			out = append(out, m)
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

func (f *fakeChat) MarkRead(ctx context.Context, id string) error {
	return f.change(id, "MarkRead", func(c *chat.Conversation) { c.Unread = 0 })
}

func (f *fakeChat) Typing(ctx context.Context, id string) error {
	return f.change(id, "Typing", func(c *chat.Conversation) {})
}

func (f *fakeChat) Subscribe(ctx context.Context) <-chan chat.Event {
	ch := make(chan chat.Event, 100)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.subs, ch)
		close(ch)
		f.mu.Unlock()
		f.unsubscribed <- struct{}{}
	}()
	return ch
}

// emit sends an event to every subscriber.
func (f *fakeChat) emit(ev chat.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		ch <- ev
	}
}

func (f *fakeChat) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// sseEvent is one event (or comment) of the stream as a test reads it.
type sseEvent struct {
	name, data, comment string
	at                  time.Time
}

// sseClient reads an event stream in the background.
type sseClient struct {
	events chan sseEvent
	cancel context.CancelFunc
	done   chan struct{} // closed when the stream ended
	header http.Header
	hello  sseEvent
}

// stream opens GET /api/events and checks that hello comes first.
func (e *env) stream(opts ...reqOpt) *sseClient {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.hs.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+testPassword)
	for _, o := range opts {
		o(req)
	}
	res, err := e.hs.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		e.t.Fatalf("event stream: status %d: %s", res.StatusCode, b)
	}
	c := &sseClient{events: make(chan sseEvent, 1000), cancel: cancel, done: make(chan struct{}), header: res.Header}
	go func() {
		defer close(c.done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" || ev.comment != "" {
					ev.at = time.Now()
					c.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				c.events <- sseEvent{comment: strings.TrimSpace(line[1:]), at: time.Now()}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			}
		}
	}()
	c.hello = c.next(e.t)
	if c.hello.name != "hello" {
		e.t.Fatalf("first event %+v, want hello", c.hello)
	}
	return c
}

const eventTimeout = 10 * time.Second

// next returns the next event or comment, failing after eventTimeout.
func (c *sseClient) next(t testing.TB) sseEvent {
	t.Helper()
	select {
	case ev := <-c.events:
		return ev
	case <-c.done:
		select {
		case ev := <-c.events:
			return ev
		default:
		}
		t.Fatal("event stream ended")
	case <-time.After(eventTimeout):
		t.Fatalf("no event within %v", eventTimeout)
	}
	return sseEvent{}
}

// waitFor returns the first event with the name whose data satisfies ok (nil: any), skipping others.
func (c *sseClient) waitFor(t testing.TB, name string, ok func(data string) bool) sseEvent {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case ev := <-c.events:
			if ev.name == name && (ok == nil || ok(ev.data)) {
				return ev
			}
		case <-c.done:
			t.Fatalf("event stream ended while waiting for %s", name)
		case <-deadline:
			t.Fatalf("no %s event within %v", name, eventTimeout)
		}
	}
}

// ended waits for the stream's end.
func (c *sseClient) ended(t testing.TB) {
	t.Helper()
	for {
		select {
		case <-c.events:
		case <-c.done:
			return
		case <-time.After(eventTimeout):
			t.Fatalf("event stream did not end within %v", eventTimeout)
		}
	}
}

var errBoom = errors.New("disk on fire")
