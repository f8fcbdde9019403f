package imapserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
	"github.com/tanglemail/tanglemail/internal/store"
)

const (
	testUser = "tanglemail"
	testPass = "correct horse battery staple"
)

// testUIDValidity returns a deterministic UIDVALIDITY generator: 100, 101, …
func testUIDValidity() func() uint32 {
	var n atomic.Uint32
	n.Store(99)
	return func() uint32 { return n.Add(1) }
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t testing.TB, path string) *store.Store {
	t.Helper()
	st, err := store.Open(path, store.WithUIDValidity(testUIDValidity()))
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testServer is a Server on 127.0.0.1:0 over a fresh store.
type testServer struct {
	t    testing.TB
	st   *store.Store
	srv  *Server
	addr string
	done chan error
}

func newTestServer(t testing.TB, opts ...func(*Options)) *testServer {
	t.Helper()
	st := openStore(t, filepath.Join(t.TempDir(), "mail.db"))
	return startServer(t, st, opts...)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func startServer(t testing.TB, st *store.Store, opts ...func(*Options)) *testServer {
	t.Helper()
	o := Options{Password: testPass, Logger: testLogger(t), Penalty: penaltytest.Instant()}
	for _, f := range opts {
		f(&o)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, st: st, srv: New(st, o), addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- ts.srv.Serve(ln) }()
	t.Cleanup(ts.stop)
	return ts
}

// stop closes the server, checks that Serve returned and that no panic was recovered.
func (ts *testServer) stop() {
	ts.t.Helper()
	if err := ts.srv.Close(); err != nil {
		ts.t.Errorf("Close: %v", err)
	}
	select {
	case err := <-ts.done:
		if !errors.Is(err, ErrServerClosed) {
			ts.t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		ts.done <- err // a second stop sees it again
	case <-time.After(10 * time.Second):
		ts.t.Errorf("Serve did not return after Close")
	}
	if n := ts.srv.panics.Load(); n != 0 {
		ts.t.Errorf("server recovered %d panics", n)
	}
}

// dial connects an imapclient without logging in.
func (ts *testServer) dial(t testing.TB, o *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(ts.addr, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitGreeting(); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return c
}

// client connects and logs in.
func (ts *testServer) client(t testing.TB, o ...*imapclient.Options) *imapclient.Client {
	t.Helper()
	var opt *imapclient.Options
	if len(o) > 0 {
		opt = o[0]
	}
	c := ts.dial(t, opt)
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// selectBox selects a mailbox and returns its data.
func selectBox(t testing.TB, c *imapclient.Client, name string) *imap.SelectData {
	t.Helper()
	d, err := c.Select(name, nil).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", name, err)
	}
	return d
}

func mailbox(t testing.TB, st *store.Store, name string) store.Mailbox {
	t.Helper()
	m, err := st.Mailbox(testCtx(t), name)
	if err != nil {
		t.Fatalf("Mailbox(%q): %v", name, err)
	}
	return m
}

// deliver appends a message to a mailbox through the store, as the inbox layer does.
func deliver(t testing.TB, st *store.Store, name string, raw []byte, flags ...string) store.Appended {
	t.Helper()
	f, err := store.ParseFlags(flags...)
	if err != nil {
		t.Fatal(err)
	}
	a, err := st.Append(testCtx(t), store.NewMessage{MailboxID: mailbox(t, st, name).ID, Raw: raw, Flags: f,
		Received: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return a
}

// plainMsg builds a small CRLF message.
func plainMsg(subject, body string) []byte {
	return []byte("From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Mar 2026 15:04:05 +0100\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") +
		"@example.org>\r\n\r\n" + body)
}

// multipartMsg is a multipart/mixed message with a text part (quoted-printable), an HTML part and a
// base64 attachment.
var multipartMsg = []byte("From: \"Alice Example\" <alice@example.org>\r\n" +
	"To: bob@example.org, Carol <carol@example.net>\r\n" +
	"Cc: dave@example.com\r\n" +
	"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= with parts\r\n" +
	"Date: Tue, 03 Mar 2026 09:30:00 +0000\r\n" +
	"Message-ID: <multi.1@example.org>\r\n" +
	"In-Reply-To: <parent@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Hello Bob,=0D=0Athe plan is attached.\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>Hello Bob</p>\r\n" +
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: application/pdf; name=\"plan.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"plan.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQKJcfsj6IK\r\n" +
	"--outer--\r\n")

// rawConn speaks IMAP as text, for checks on exact responses.
type rawConn struct {
	t   testing.TB
	c   net.Conn
	br  *bufio.Reader
	tag int
}

func (ts *testServer) raw(t testing.TB) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawConn{t: t, c: c, br: bufio.NewReader(c)}
	if line := r.readLine(); !strings.HasPrefix(line, "* OK") {
		t.Fatalf("greeting: %q", line)
	}
	return r
}

// rawLogin connects and logs in with LOGIN.
func (ts *testServer) rawLogin(t testing.TB) *rawConn {
	r := ts.raw(t)
	r.ok("LOGIN %s %q", testUser, testPass)
	return r
}

// readLine reads one response line; a literal at its end is read and appended.
func (r *rawConn) readLine() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var sb strings.Builder
	for {
		line, err := r.br.ReadString('\n')
		if err != nil {
			r.t.Fatalf("read: %v (after %q)", err, sb.String()+line)
		}
		sb.WriteString(line)
		l := strings.TrimRight(line, "\r\n")
		if !strings.HasSuffix(l, "}") {
			break
		}
		open := strings.LastIndexByte(l, '{')
		n, err := strconv.Atoi(strings.TrimSuffix(l[open+1:len(l)-1], "+"))
		if open < 0 || err != nil {
			break
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.br, buf); err != nil {
			r.t.Fatalf("read literal: %v", err)
		}
		sb.Write(buf)
	}
	return strings.TrimRight(sb.String(), "\r\n")
}

func (r *rawConn) send(format string, args ...any) string {
	r.t.Helper()
	r.tag++
	tag := fmt.Sprintf("t%d", r.tag)
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(r.c, tag+" "+format+"\r\n", args...); err != nil {
		r.t.Fatalf("write: %v", err)
	}
	return tag
}

// cmd sends a command and returns the untagged responses and the tagged status line.
func (r *rawConn) cmd(format string, args ...any) (untagged []string, status string) {
	r.t.Helper()
	tag := r.send(format, args...)
	return r.readUntil(tag)
}

func (r *rawConn) readUntil(tag string) (untagged []string, status string) {
	r.t.Helper()
	for {
		line := r.readLine()
		if strings.HasPrefix(line, tag+" ") {
			return untagged, strings.TrimPrefix(line, tag+" ")
		}
		untagged = append(untagged, line)
	}
}

// expect runs a command and checks the tagged status (OK, NO, BAD) and, if code is set, its
// response code.
func (r *rawConn) expect(status, code, format string, args ...any) []string {
	r.t.Helper()
	u, st := r.cmd(format, args...)
	if !strings.HasPrefix(st, status+" ") {
		r.t.Fatalf("%q: got %q, want %s", fmt.Sprintf(format, args...), st, status)
	}
	if code != "" && !strings.HasPrefix(st, status+" ["+code) {
		r.t.Fatalf("%q: got %q, want code %s", fmt.Sprintf(format, args...), st, code)
	}
	return u
}

func (r *rawConn) ok(format string, args ...any) []string {
	r.t.Helper()
	return r.expect("OK", "", format, args...)
}

// has reports whether some line contains all the substrings.
func has(lines []string, subs ...string) bool {
	for _, l := range lines {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			return true
		}
	}
	return false
}

// imapCode returns the response code of an *imap.Error, or "".
func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}
