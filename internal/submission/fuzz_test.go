package submission

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/handoff"
	"github.com/tanglemail/tanglemail/internal/mail"
)

// notifyConn reports when the server has closed its end.
type notifyConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// FuzzSession feeds arbitrary client bytes to a server connection over net.Pipe (a local connection,
// so AUTH is allowed): the server must not panic (go-smtp recovers panics in command handlers and
// logs them, so the log is watched), must end the connection once the client has closed it, and
// what reaches the backend keeps the invariants (fuzzBackend).
func FuzzSession(f *testing.F) {
	f.Add([]byte("EHLO x\r\nAUTH PLAIN " + plainIR(own, password) + "\r\nMAIL FROM:<" + own + ">\r\nRCPT TO:<" + rcpt1 +
		">\r\nDATA\r\nSubject: s\r\nBcc: <" + rcpt2 + ">\r\n\r\nhi\r\n.\r\nQUIT\r\n"))

	be := &fuzzBackend{t: f}
	plog := &panicLog{}
	opts := testOptions(f)
	opts.Logger = slog.New(slog.NewTextHandler(plog, nil))
	opts.MaxMessageBytes = 4096
	opts.MaxRecipients = 5
	// No deadlines: on a net.Pipe whose client end is closed, setting one fails and go-smtp would
	// drop the commands it has buffered; without them it processes every byte the client wrote.
	opts.ReadTimeout = -1
	opts.WriteTimeout = -1
	srv := New(be, opts)
	ln := handoff.New()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	f.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil {
			f.Errorf("Serve: %v", err)
		}
		if p := plog.take(); p != "" { // a panic in go-smtp itself is logged after the close
			f.Errorf("panic:\n%s", p)
		}
	})

	f.Fuzz(func(t *testing.T, input []byte) {
		be.setT(t)
		client, server := net.Pipe()
		nc := &notifyConn{Conn: server, closed: make(chan struct{})}
		pushed := make(chan bool, 1)
		go func() { pushed <- ln.Push(nc) }()
		select {
		case ok := <-pushed:
			if !ok {
				t.Fatal("server closed")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server does not accept")
		}
		read := make(chan struct{})
		go func() {
			io.Copy(io.Discard, client)
			close(read)
		}()
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		client.Write(input) // fails when the server hangs up first (QUIT, too many errors)
		client.Close()
		select {
		case <-nc.closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("server did not end the connection after the client closed it; input %q", input)
		}
		<-read
		if p := plog.take(); p != "" {
			t.Fatalf("panic on input %q:\n%s", input, p)
		}
	})
}

// fuzzBackend checks what reaches it: the invariants hold whatever the client sent.
type fuzzBackend struct {
	mu sync.Mutex
	t  testing.TB
}

func (b *fuzzBackend) setT(t testing.TB) {
	b.mu.Lock()
	b.t = t
	b.mu.Unlock()
}

func (b *fuzzBackend) Submit(ctx context.Context, s Message) (string, error) {
	b.mu.Lock()
	t := b.t
	b.mu.Unlock()
	if len(s.Rcpts) == 0 || len(s.Rcpts) > 5 {
		t.Errorf("%d recipients", len(s.Rcpts))
	}
	if s.From.Mail() != own {
		t.Errorf("From %s", s.From.Mail())
	}
	if mail.HasField(s.Raw, "Bcc") || !bytes.Equal(mail.StripBcc(s.SentCopy), s.Raw) {
		t.Errorf("Bcc handling: raw %q sent %q", s.Raw, s.SentCopy)
	}
	if len(s.SentCopy) > 4096+200 {
		t.Errorf("message of %d bytes passed a 4096-byte limit", len(s.SentCopy))
	}
	if _, err := mail.Parse(s.Raw); err != nil {
		t.Errorf("submitted message does not parse: %v", err)
	}
	return "f", nil
}

// panicLog records what was logged about a panic: ours (logPanic, "panic in session") and go-smtp's
// ("panic serving", logged after go-smtp recovered it, answered 421 and closed the connection).
type panicLog struct {
	mu  sync.Mutex
	hit string
}

// knownGoSMTPPanic matches go-smtp issue #129 (github.com/emersion/go-smtp/issues/129, still in
// v0.25.1): after "Too many errors" go-smtp closes the connection, which drops the session, but
// goes on with the commands it has already buffered, and MAIL, RCPT, DATA or BDAT then dereference
// the nil session. go-smtp recovers it (421, the connection is already closed); no code of ours
// runs, nothing reaches the backend.
var knownGoSMTPPanic = regexp.MustCompile(`(?s)panic serving .*nil pointer dereference.*go-smtp\S*\.\(\*Conn\)\.handle(Mail|Rcpt|Data|Bdat)\(`)

func (p *panicLog) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("panic")) && !knownGoSMTPPanic.Match(b) {
		p.mu.Lock()
		p.hit = string(b)
		p.mu.Unlock()
	}
	return len(b), nil
}

func (p *panicLog) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hit
	p.hit = ""
	return h
}
