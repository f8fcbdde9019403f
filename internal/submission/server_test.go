package submission

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
)

func TestAuth(t *testing.T) {
	be := &memBackend{}
	_, addr := startServer(t, be, testOptions(t))

	t.Run("advertised", func(t *testing.T) {
		c := client(t, addr)
		if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN" {
			t.Fatalf("AUTH %v %q", ok, mechs)
		}
	})
	t.Run("PLAIN ok", func(t *testing.T) {
		c := client(t, addr)
		if err := c.Auth(sasl.NewPlainClient("", own, password)); err != nil {
			t.Fatal(err)
		}
		if _, err := send(t, c, own, []string{rcpt1}, testMessage("plain")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("PLAIN wrong password", func(t *testing.T) {
		c := client(t, addr)
		wantCode(t, c.Auth(sasl.NewPlainClient("", own, password+"x")), 535, "5.7.8", "")
		// Still unauthenticated: MAIL is refused, and another AUTH may follow.
		wantCode(t, c.Mail(own, nil), 530, "5.7.0", "Authentication required")
		if err := c.Auth(sasl.NewPlainClient("", own, password)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("PLAIN authorization identity", func(t *testing.T) {
		c := client(t, addr)
		wantCode(t, c.Auth(sasl.NewPlainClient("admin", own, password)), 535, "5.7.8", "")
		c = client(t, addr)
		if err := c.Auth(sasl.NewPlainClient(own, own, password)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LOGIN ok", func(t *testing.T) {
		c := client(t, addr)
		if err := c.Auth(sasl.NewLoginClient(own, password)); err != nil {
			t.Fatal(err)
		}
		if _, err := send(t, c, own, []string{rcpt1}, testMessage("login")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LOGIN wrong", func(t *testing.T) {
		c := client(t, addr)
		wantCode(t, c.Auth(sasl.NewLoginClient(own, "nope")), 535, "5.7.8", "")
	})
	t.Run("wire", func(t *testing.T) {
		w := dialWire(t, addr)
		w.expect(250, "EHLO client.test")
		// LOGIN step by step, with the challenges of the mechanism.
		if msg := w.expect(334, "AUTH LOGIN"); msg != b64("Username:") {
			t.Errorf("challenge %q", msg)
		}
		if msg := w.expect(334, "%s", b64(own)); msg != b64("Password:") {
			t.Errorf("challenge %q", msg)
		}
		w.expect(235, "%s", b64(password))
		w.expect(503, "AUTH PLAIN %s", plainIR(own, password)) // already authenticated

		w = dialWire(t, addr)
		w.expect(250, "EHLO client.test")
		w.expect(334, "AUTH LOGIN %s", b64(own)) // user name as initial response
		w.expect(535, "%s", b64("bad"))
		w.expect(501, "AUTH PLAIN %s", b64("no NULs here"))
		w.expect(504, "AUTH CRAM-MD5")
		w.expect(334, "AUTH PLAIN")
		w.expect(501, "*") // cancelled (RFC 4954 §4)
		w.expect(235, "AUTH PLAIN %s", plainIR(own, password))
	})
	if n := len(be.all()); n != 2 {
		t.Errorf("%d submissions, want 2", n)
	}
}

func TestMailBeforeAuth(t *testing.T) {
	be := &memBackend{}
	_, addr := startServer(t, be, testOptions(t))
	w := dialWire(t, addr)
	w.expect(250, "EHLO client.test")
	if code, msg := w.cmd("MAIL FROM:<%s>", own); code != 530 || !strings.HasPrefix(msg, "5.7.0 ") {
		t.Fatalf("MAIL before AUTH: %d %s", code, msg)
	}
	if code, _ := w.cmd("RCPT TO:<%s>", rcpt1); code/100 != 5 {
		t.Fatalf("RCPT before AUTH: %d", code)
	}
	if code, _ := w.cmd("DATA"); code/100 != 5 {
		t.Fatalf("DATA before AUTH: %d", code)
	}
	if len(be.all()) != 0 {
		t.Fatal("submitted without AUTH")
	}
}

func TestMailFrom(t *testing.T) {
	_, addr := startServer(t, &memBackend{}, testOptions(t))
	c := authedClient(t, addr)
	wantCode(t, c.Mail("me@example.com", nil), 553, "5.7.1", "<me@example.com> is not your address: this node sends only as <"+own+">")
	wantCode(t, c.Mail(rcpt1, nil), 553, "5.7.1", "not your address")
	for _, from := range []string{own, strings.ToUpper(addr0) + "@TANGLE", ""} {
		if err := c.Mail(from, nil); err != nil {
			t.Errorf("MAIL FROM:<%s>: %v", from, err)
		}
		c.Reset()
	}
}

func TestRcpt(t *testing.T) {
	_, addr := startServer(t, &memBackend{}, testOptions(t))
	c := authedClient(t, addr)
	if err := c.Mail(own, nil); err != nil {
		t.Fatal(err)
	}
	badSum := addr1[:len(addr1)-1] + "q@tangle"
	cases := []struct{ rcpt, reason string }{
		{"bob@example.com", "bob@example.com is not a tangle address: tanglemail delivers only to <address>@tangle"},
		{badSum, badSum + " is not a valid tangle address: bad address checksum"},
		{"tm1abc@tangle", "is not a valid tangle address"},
		{"bc1" + addr1[3:] + "@tangle", "does not start with tm1"},
		{"postmaster@tangle", "postmaster@tangle is not a valid tangle address"},
	}
	for _, cs := range cases {
		err := c.Rcpt(cs.rcpt, nil)
		wantCode(t, err, 550, "5.1.1", cs.reason)
	}
	for _, r := range []string{rcpt1, strings.ToUpper(addr2) + "@Tangle"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
}

func TestSubmitRecipientsAndBcc(t *testing.T) {
	be := &memBackend{}
	_, addr := startServer(t, be, testOptions(t))
	c := authedClient(t, addr)
	msg := []byte("From: Me <" + own + ">\r\n" +
		"To: Friend <" + rcpt1 + ">\r\n" +
		"Bcc: Secret <" + rcpt2 + ">,\r\n secret2@example.com\r\n" +
		"Subject: with bcc\r\n" +
		"\r\n" +
		"Body line\r\n" +
		"Bcc: this is body text\r\n")
	// The envelope decides: rcpt1, rcpt2 (the Bcc), rcpt1 again (once), not the header's example.com.
	reply, err := send(t, c, own, []string{rcpt2, rcpt1, rcpt1}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(reply, "OK: queued as q1") {
		t.Errorf("reply %q", reply)
	}
	s := be.only(t)
	var rcpts []string
	for _, r := range s.Rcpts {
		rcpts = append(rcpts, r.Mail())
	}
	if strings.Join(rcpts, ",") != rcpt2+","+rcpt1 {
		t.Errorf("Rcpts %v", rcpts)
	}
	if !s.From.Equal(ownAddress(t)) {
		t.Errorf("From %v", s.From)
	}
	if mail.HasField(s.Raw, "Bcc") || bytes.Contains(s.Raw, []byte(rcpt2)) || bytes.Contains(s.Raw, []byte("Secret")) {
		t.Errorf("Bcc leaks into the delivered message:\n%s", s.Raw)
	}
	if !bytes.Contains(s.Raw, []byte("\r\nBcc: this is body text\r\n")) {
		t.Error("body changed")
	}
	if !mail.HasField(s.SentCopy, "Bcc") || !bytes.Equal(mail.StripBcc(s.SentCopy), s.Raw) {
		t.Errorf("Sent copy:\n%s", s.SentCopy)
	}
	// Date and Message-ID were missing: added (Date from Options.Now, in UTC), after the client's fields.
	m, err := mail.Parse(s.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Date.Equal(time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)) || m.MessageID == "" || m.MessageID != s.MessageID {
		t.Errorf("Date %v Message-ID %q / %q", m.Date, m.MessageID, s.MessageID)
	}
	want := "Subject: with bcc\r\nDate: Tue, 03 Feb 2026 04:05:06 +0000\r\nMessage-ID: <" + m.MessageID + ">\r\n\r\nBody line"
	if !bytes.Contains(s.Raw, []byte(want)) {
		t.Errorf("fields not added at the end of the header:\n%s", s.Raw)
	}
	// Given Date and Message-ID are kept byte for byte.
	orig := testMessage("kept")
	if _, err := send(t, c, own, []string{rcpt1}, orig); err != nil {
		t.Fatal(err)
	}
	if s := be.all()[1]; !bytes.Equal(s.Raw, orig) || !bytes.Equal(s.SentCopy, orig) || s.MessageID != "kept@client.test" {
		t.Errorf("message changed:\n%q\n%q", s.Raw, orig)
	}
}

func TestFromHeader(t *testing.T) {
	be := &memBackend{}
	_, addr := startServer(t, be, testOptions(t))
	c := authedClient(t, addr)
	_, err := send(t, c, own, []string{rcpt1}, []byte("From: Mallory <"+rcpt2+">\r\nSubject: x\r\n\r\nhi\r\n"))
	wantCode(t, err, 550, "5.7.1", "From: <"+rcpt2+"> is not your address")
	c.Reset()
	_, err = send(t, c, own, []string{rcpt1}, []byte("From: me@example.com\r\n\r\nhi\r\n"))
	wantCode(t, err, 550, "5.7.1", "not your address")
	c.Reset()
	_, err = send(t, c, own, []string{rcpt1}, []byte("From: \r\n\r\nhi\r\n"))
	wantCode(t, err, 550, "5.6.0", "empty")
	c.Reset()
	_, err = send(t, c, own, []string{rcpt1}, []byte("From: <"+own+">\r\nFrom: <"+own+">\r\n\r\nhi\r\n"))
	wantCode(t, err, 550, "5.6.0", "2 authors")
	c.Reset()
	_, err = send(t, c, own, []string{rcpt1}, []byte("not a header\r\n\r\nhi\r\n"))
	wantCode(t, err, 554, "5.6.0", "cannot be parsed")
	c.Reset()
	// No From at all: the user's address is added.
	if _, err := send(t, c, own, []string{rcpt1}, []byte("Subject: s\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	s := be.all()[0]
	if m, err := mail.Parse(s.Raw); err != nil || len(m.From) != 1 || m.From[0].Address != own {
		t.Errorf("From not added: %v\n%s", err, s.Raw)
	}
}

func TestSize(t *testing.T) {
	const limit = 2000
	be := &memBackend{}
	opts := testOptions(t)
	opts.MaxMessageBytes = limit
	_, addr := startServer(t, be, opts)
	c := authedClient(t, addr)
	if ok, v := c.Extension("SIZE"); !ok || v != strconv.Itoa(limit) {
		t.Fatalf("SIZE %v %q", ok, v)
	}
	// MAIL FROM SIZE= beyond the limit (RFC 1870 §6.1).
	wantCode(t, c.Mail(own, &smtp.MailOptions{Size: limit + 1}), 552, "5.3.4", "")
	if err := c.Mail(own, &smtp.MailOptions{Size: limit}); err != nil {
		t.Fatal(err)
	}
	c.Reset()

	sized := func(n int) []byte {
		m := testMessage("size")
		for n-len(m) > 100 {
			m = append(m, strings.Repeat("x", 78)+"\r\n"...)
		}
		m = append(m, strings.Repeat("y", n-len(m)-2)+"\r\n"...)
		if len(m) != n {
			t.Fatalf("sized(%d) is %d bytes", n, len(m))
		}
		return m
	}
	// go-smtp's DATA reader refuses a message of exactly the limit (it errors before it sees the
	// terminating dot), so the largest message accepted through DATA is limit−1 bytes.
	if _, err := send(t, c, own, []string{rcpt1}, sized(limit-1)); err != nil {
		t.Fatalf("limit-1: %v", err)
	}
	_, err := send(t, c, own, []string{rcpt1}, sized(limit))
	wantCode(t, err, 552, "5.3.4", "") // if go-smtp fixes this, accept it here and update the docs
	_, err = send(t, c, own, []string{rcpt1}, sized(limit+1))
	wantCode(t, err, 552, "5.3.4", "")
	_, err = send(t, c, own, []string{rcpt1}, sized(10*limit))
	wantCode(t, err, 552, "5.3.4", "")
	_, err = send(t, c, own, []string{rcpt1}, append(testMessage("long line"), strings.Repeat("z", 3000)+"\r\n"...))
	wantCode(t, err, 500, "5.5.2", "Line too long")
	c.Close()
	c = authedClient(t, addr) // go-smtp closes the connection after a line that is too long
	// The connection is still usable after a refused message.
	if _, err := send(t, c, own, []string{rcpt1}, testMessage("after")); err != nil {
		t.Fatal(err)
	}
	if n := len(be.all()); n != 2 {
		t.Errorf("%d submissions, want 2", n)
	}

	// BDAT (RFC 3030): the limit holds too, and a message of exactly the limit is accepted.
	w := dialWire(t, addr)
	w.expect(250, "EHLO client.test")
	w.expect(235, "AUTH PLAIN %s", plainIR(own, password))
	for _, n := range []int{limit, limit + 1} {
		w.expect(250, "MAIL FROM:<%s>", own)
		w.expect(250, "RCPT TO:<%s>", rcpt1)
		m := sized(n)
		fmt.Fprintf(w.c, "BDAT %d LAST\r\n", len(m))
		w.c.Write(m)
		code, msg := w.read()
		if n == limit && code != 250 || n > limit && code != 552 {
			t.Errorf("BDAT %d bytes: %d %s", n, code, msg)
		}
	}
}

func TestMaxRecipients(t *testing.T) {
	opts := testOptions(t)
	opts.MaxRecipients = 1
	_, addr := startServer(t, &memBackend{}, opts)
	c := authedClient(t, addr)
	if ok, v := c.Extension("LIMITS"); !ok || v != "RCPTMAX=1" {
		t.Errorf("LIMITS %v %q", ok, v)
	}
	c.Mail(own, nil)
	if err := c.Rcpt(rcpt1, nil); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Rcpt(rcpt2, nil), 452, "4.5.3", "")
}

// TestAckAfterCommit: the 250 after DATA is written only once Backend.Submit has returned.
func TestAckAfterCommit(t *testing.T) {
	be := &memBackend{entered: make(chan struct{}, 1), release: make(chan struct{})}
	_, addr := startServer(t, be, testOptions(t))
	w := dialWire(t, addr)
	w.expect(250, "EHLO client.test")
	w.expect(235, "AUTH PLAIN %s", plainIR(own, password))
	w.expect(250, "MAIL FROM:<%s>", own)
	w.expect(250, "RCPT TO:<%s>", rcpt1)
	w.expect(354, "DATA")
	w.c.Write(append(testMessage("slow"), ".\r\n"...))

	select {
	case <-be.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("Submit not called")
	}
	reply := make(chan string, 1)
	go func() {
		code, msg, err := w.tp.ReadResponse(0)
		reply <- fmt.Sprint(code, " ", msg, " ", err)
	}()
	select {
	case r := <-reply:
		t.Fatalf("reply before Submit returned: %s", r)
	case <-time.After(300 * time.Millisecond):
	}
	if len(be.all()) != 0 {
		t.Fatal("stored before release")
	}
	close(be.release)
	select {
	case r := <-reply:
		if !strings.HasPrefix(r, "250 2.0.0 OK: queued as q1") {
			t.Fatalf("reply %q", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply after Submit returned")
	}
}

func TestBackendError(t *testing.T) {
	be := &memBackend{}
	be.setErr(errors.New("disk on fire"))
	var logs bytes.Buffer
	opts := testOptions(t)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, addr := startServer(t, be, opts)
	c := authedClient(t, addr)
	msg := testMessage("secret-subject", "X-Body-Marker: zebra")
	_, err := send(t, c, own, []string{rcpt1}, msg)
	wantCode(t, err, 451, "4.3.0", "try again later")
	// The client retries on the same connection once the store is back.
	be.setErr(nil)
	c.Reset()
	if _, err := send(t, c, own, []string{rcpt1}, msg); err != nil {
		t.Fatal(err)
	}
	// Logs name the failure, never the content or the password.
	l := logs.String()
	if !strings.Contains(l, "disk on fire") || !strings.Contains(l, "queued") {
		t.Errorf("logs lack the events:\n%s", l)
	}
	for _, secret := range []string{password, "secret-subject", "zebra", "Hello."} {
		if strings.Contains(l, secret) {
			t.Errorf("logs contain %q:\n%s", secret, l)
		}
	}
}

// TestRemoteNeedsTLS: a connection from another machine gets no AUTH without TLS (RFC 4954 §4, RFC
// 3207), and gets it after STARTTLS.
func TestRemoteNeedsTLS(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	be := &memBackend{}

	t.Run("without TLS configured", func(t *testing.T) {
		_, addr := startServer(t, be, testOptions(t), func(l net.Listener) net.Listener { return remoteListener{l} })
		c := client(t, addr)
		if ok, _ := c.Extension("AUTH"); ok {
			t.Error("AUTH advertised to a remote plaintext connection")
		}
		if ok, _ := c.Extension("STARTTLS"); ok {
			t.Error("STARTTLS advertised without a TLS config")
		}
		w := dialWire(t, addr)
		w.expect(250, "EHLO client.test")
		if code, msg := w.cmd("AUTH PLAIN %s", plainIR(own, password)); code != 538 || !strings.HasPrefix(msg, "5.7.11 ") {
			t.Fatalf("AUTH: %d %s", code, msg)
		}
		if code, _ := w.cmd("MAIL FROM:<%s>", own); code != 530 {
			t.Fatalf("MAIL: %d", code)
		}
	})
	t.Run("STARTTLS", func(t *testing.T) {
		opts := testOptions(t)
		opts.TLSConfig = srvTLS
		_, addr := startServer(t, be, opts, func(l net.Listener) net.Listener { return remoteListener{l} })
		pre := client(t, addr)
		if ok, _ := pre.Extension("STARTTLS"); !ok {
			t.Fatal("STARTTLS not advertised")
		}
		if ok, _ := pre.Extension("AUTH"); ok {
			t.Error("AUTH advertised before STARTTLS")
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := smtp.NewClientStartTLS(conn, cliTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, ok := c.TLSConnectionState(); !ok {
			t.Fatal("no TLS")
		}
		if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN" {
			t.Errorf("AUTH after STARTTLS: %v %q", ok, mechs)
		}
		if err := c.Auth(sasl.NewPlainClient("", own, password)); err != nil {
			t.Fatal(err)
		}
		if _, err := send(t, c, own, []string{rcpt1}, testMessage("tls")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("loopback with TLS configured", func(t *testing.T) {
		opts := testOptions(t)
		opts.TLSConfig = srvTLS
		_, addr := startServer(t, be, opts)
		c := client(t, addr)
		if ok, _ := c.Extension("AUTH"); !ok {
			t.Error("loopback must not need TLS")
		}
	})
}

func TestConfigErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	opts := testOptions(t)
	opts.Password = ""
	if err := New(&memBackend{}, opts).Serve(l); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("no password: %v", err)
	}
	opts = testOptions(t)
	opts.Address = identity.Address{}
	if err := New(&memBackend{}, opts).Serve(l); err == nil {
		t.Error("no address accepted")
	}
	if err := New(nil, testOptions(t)).Serve(l); err == nil {
		t.Error("no backend accepted")
	}
}

func TestShutdownWaitsForSubmit(t *testing.T) {
	be := &memBackend{entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv, addr := startServer(t, be, testOptions(t))
	c := authedClient(t, addr)
	done := make(chan error, 1)
	go func() {
		_, err := send(t, c, own, []string{rcpt1}, testMessage("shutdown"))
		if err == nil {
			err = c.Quit()
		}
		done <- err
	}()
	<-be.entered
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(t.Context()) }()
	time.Sleep(100 * time.Millisecond)
	close(be.release)
	if err := <-done; err != nil {
		t.Fatalf("submission during shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still listening after Shutdown")
	}
}

func TestReplyText(t *testing.T) {
	if got := replyText("a\r\nb\x00c\u00e9"); got != "a??b?c?" {
		t.Errorf("%q", got)
	}
	if got := replyText(strings.Repeat("x", 500)); len(got) != 400 {
		t.Errorf("len %d", len(got))
	}
}
