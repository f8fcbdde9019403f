package submission

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/selfsigned"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
)

// Addresses of protocol.md §9.1: the user is the first.
const (
	addr0 = "tm1yqak5faue6m2gttz5w5dq2n0p4ek2vs4wuw7ysax8tqy3gvtt8dzjv2wx6m"
	addr1 = "tm19qp6zpal708pp0sawrw33e6tczvk0exkxzd62r2lrhwgveqj25cmshel8e9"
	addr2 = "tm1xz6sw65ywj5r9khwfh2mgpqfswmxyw6lx39v54756mhyhtelyk0xug0s4g5"

	own      = addr0 + "@tangle"
	rcpt1    = addr1 + "@tangle"
	rcpt2    = addr2 + "@tangle"
	password = "correct horse battery staple"
)

func ownAddress(t testing.TB) identity.Address {
	t.Helper()
	a, err := identity.ParseAddress(own)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// memBackend records submissions. With release set, Submit signals entered and waits for release.
type memBackend struct {
	mu      sync.Mutex
	subs    []Message
	err     error
	entered chan struct{}
	release chan struct{}
}

func (b *memBackend) Submit(ctx context.Context, s Message) (string, error) {
	if b.entered != nil {
		b.entered <- struct{}{}
	}
	if b.release != nil {
		select {
		case <-b.release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if s.Text != nil {
		// A spooled message: record it whole, as small ones are.
		text, err := io.ReadAll(s.Text)
		if err != nil {
			return "", err
		}
		s.Raw = append(bytes.Clone(s.Raw), text...)
		s.SentCopy = append(bytes.Clone(s.SentCopy), text...)
		s.Text = nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return "", b.err
	}
	b.subs = append(b.subs, s)
	return fmt.Sprintf("q%d", len(b.subs)), nil
}

func (b *memBackend) setErr(err error) {
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
}

func (b *memBackend) all() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.subs...)
}

// only returns the one submission, failing if there are more or none.
func (b *memBackend) only(t testing.TB) Message {
	t.Helper()
	subs := b.all()
	if len(subs) != 1 {
		t.Fatalf("%d submissions, want 1", len(subs))
	}
	return subs[0]
}

func testOptions(t testing.TB) Options {
	return Options{
		Address:  ownAddress(t),
		Password: password,
		Hostname: "node.test",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:      func() time.Time { return time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC) },
		Penalty:  penaltytest.Instant(),
	}
}

// startServer serves on 127.0.0.1:0 (or on wrap(listener) when wrap is given) and returns the
// address.
func startServer(t testing.TB, be Backend, opts Options, wrap ...func(net.Listener) net.Listener) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	for _, w := range wrap {
		l = w(l)
	}
	srv := New(be, opts)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, addr
}

// client dials and says EHLO with go-smtp's client.
func client(t testing.TB, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func authedClient(t testing.TB, addr string) *smtp.Client {
	t.Helper()
	c := client(t, addr)
	if err := c.Auth(sasl.NewPlainClient("", own, password)); err != nil {
		t.Fatal(err)
	}
	return c
}

// smtpCode returns the code and enhanced code of an error from go-smtp's client.
func smtpCode(err error) (int, string, string) {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return 0, "", fmt.Sprint(err)
	}
	return se.Code, fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2]), se.Message
}

func wantCode(t testing.TB, err error, code int, enhanced, contains string) {
	t.Helper()
	c, e, msg := smtpCode(err)
	if c != code || e != enhanced || !strings.Contains(msg, contains) {
		t.Fatalf("got %d %s %q, want %d %s containing %q", c, e, msg, code, enhanced, contains)
	}
}

// send runs one transaction and returns the DATA reply text.
func send(t testing.TB, c *smtp.Client, from string, to []string, msg []byte) (string, error) {
	t.Helper()
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// wire is a raw client, for what go-smtp's client hides (reply timing, pipelining, exact replies).
type wire struct {
	t  testing.TB
	c  net.Conn
	tp *textproto.Conn
}

func dialWire(t testing.TB, addr string) *wire {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w := &wire{t: t, c: c, tp: textproto.NewConn(c)}
	if code, _ := w.read(); code != 220 {
		t.Fatalf("greeting %d", code)
	}
	return w
}

func (w *wire) read() (int, string) {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	code, msg, err := w.tp.ReadResponse(0)
	if err != nil {
		w.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

func (w *wire) cmd(format string, args ...any) (int, string) {
	w.t.Helper()
	if err := w.tp.PrintfLine(format, args...); err != nil {
		w.t.Fatal(err)
	}
	return w.read()
}

func (w *wire) expect(code int, format string, args ...any) string {
	w.t.Helper()
	got, msg := w.cmd(format, args...)
	if got != code {
		w.t.Fatalf("%s: %d %s, want %d", fmt.Sprintf(format, args...), got, msg, code)
	}
	return msg
}

func plainIR(user, pass string) string {
	return b64("\x00" + user + "\x00" + pass)
}

func b64(s string) string {
	return base64.StdEncoding.EncodeToString([]byte(s))
}

// testMessage is a small CRLF message from the user.
func testMessage(subject string, extra ...string) []byte {
	var b bytes.Buffer
	b.WriteString("From: Me <" + own + ">\r\n")
	b.WriteString("To: <" + rcpt1 + ">\r\n")
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("Subject: " + subject + "\r\n")
	b.WriteString("Date: Mon, 02 Feb 2026 10:00:00 +0100\r\n")
	b.WriteString("Message-ID: <" + subject + "@client.test>\r\n")
	b.WriteString("\r\nHello.\r\n")
	return b.Bytes()
}

// selfSigned returns a TLS server config and a client config that trusts it.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	cert, err := selfsigned.New(selfsigned.Names{DNS: []string{"node.test"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: pool, ServerName: "node.test"}
}

// remoteListener makes accepted connections look as if they came from another machine.
type remoteListener struct{ net.Listener }

type remoteConn struct{ net.Conn }

func (c remoteConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
}

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c}, nil
}
