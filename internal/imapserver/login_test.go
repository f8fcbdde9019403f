package imapserver

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/handoff"
	"github.com/tanglemail/tanglemail/internal/selfsigned"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

func TestLogin(t *testing.T) {
	ts := newTestServer(t)

	c := ts.dial(t, nil)
	if !c.Caps().Has(imap.AuthCap("PLAIN")) || c.Caps().Has(imap.CapLoginDisabled) {
		t.Fatalf("caps before login on loopback: %v", c.Caps())
	}
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []imap.Cap{imap.CapIMAP4rev1, imap.CapIMAP4rev2, imap.CapIdle, imap.CapUIDPlus,
		imap.CapMove, imap.CapSpecialUse, imap.CapESearch, imap.CapLiteralPlus, imap.CapNamespace,
		imap.CapUnselect, imap.CapListStatus, imap.CapBinary, "APPENDLIMIT=67108864"} {
		if !caps.Has(want) {
			t.Errorf("capability %s missing: %v", want, caps)
		}
	}

	// User names compare case-insensitively.
	c2 := ts.dial(t, nil)
	if err := c2.Login("TangleMail", testPass).Wait(); err != nil {
		t.Fatalf("login with other case: %v", err)
	}

	// AUTHENTICATE PLAIN, with SASL-IR.
	c3 := ts.dial(t, nil)
	if err := c3.Authenticate(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if _, err := c3.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("select after authenticate: %v", err)
	}
}

func TestLoginWrong(t *testing.T) {
	ts := newTestServer(t)
	for _, tc := range []struct{ user, pass string }{
		{testUser, "wrong"},
		{testUser, ""},
		{"someone-else", testPass},
	} {
		c := ts.dial(t, nil)
		err := c.Login(tc.user, tc.pass).Wait()
		if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Errorf("login %q/%q: %v, want AUTHENTICATIONFAILED", tc.user, tc.pass, err)
		}
		// Still not authenticated.
		if _, err := c.Select("INBOX", nil).Wait(); err == nil {
			t.Errorf("select after failed login succeeded")
		}
	}
	c := ts.dial(t, nil)
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, "wrong")); err == nil {
		t.Errorf("authenticate with a wrong password succeeded")
	}
	// An authorization identity other than the user is refused.
	c = ts.dial(t, nil)
	if err := c.Authenticate(sasl.NewPlainClient("other", testUser, testPass)); err == nil {
		t.Errorf("authenticate as another identity succeeded")
	}
}

func TestLoginEmptyPasswordRefusesAll(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Password = "" })
	c := ts.dial(t, nil)
	if err := c.Login(testUser, "").Wait(); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("login with empty configured password: %v", err)
	}
}

// TestLoginRefusedWithoutTLS simulates a connection from another host: the server must advertise
// LOGINDISABLED and refuse LOGIN and AUTHENTICATE until STARTTLS.
func TestLoginRefusedWithoutTLS(t *testing.T) {
	cert := selfSigned(t)
	ts := newTestServer(t, func(o *Options) {
		o.AllowInsecureAuth = func(net.Addr) bool { return false }
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	})

	r := ts.raw(t)
	u := r.ok("CAPABILITY")
	if !has(u, "LOGINDISABLED", "STARTTLS") || has(u, "AUTH=PLAIN") {
		t.Fatalf("capabilities on a non-local plain connection: %q", u)
	}
	r.expect("NO", "PRIVACYREQUIRED", "LOGIN %s %q", testUser, testPass)
	r.expect("NO", "PRIVACYREQUIRED", "AUTHENTICATE PLAIN AHRhbmdsZW1haWwAeA==")

	// After STARTTLS the same login works.
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatalf("starttls: %v", err)
	}
	defer c.Close()
	if c.Caps().Has(imap.CapLoginDisabled) {
		t.Errorf("LOGINDISABLED after STARTTLS")
	}
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}
}

func TestIsLocal(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 1, 2, 3), Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv4(192, 168, 1, 2), Port: 1}, false},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}, true},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, false},
		{&net.UnixAddr{Name: "/run/x", Net: "unix"}, true},
		{handoff.New().Addr(), true},
		{nil, false},
	} {
		if got := IsLocal(tc.addr); got != tc.want {
			t.Errorf("IsLocal(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestUnknownCommandBeforeLogin(t *testing.T) {
	ts := newTestServer(t)
	r := ts.raw(t)
	tag := r.send("GET / HTTP/1.1")
	line := r.readLine()
	if !strings.HasPrefix(line, "* BYE") && !strings.HasPrefix(line, tag+" BAD") {
		t.Fatalf("unknown command before login: %q", line)
	}
}

// selfSigned returns a certificate for localhost and 127.0.0.1.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	cert, err := selfsigned.New(selfsigned.Names{DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// After STARTTLS the command checks go on (cmdConn answers STARTTLS and reads through TLS), and the
// capabilities no longer offer STARTTLS.
func TestStartTLSKeepsCommandChecks(t *testing.T) {
	cert := selfSigned(t)
	ts := newTestServer(t, func(o *Options) {
		o.AllowInsecureAuth = func(net.Addr) bool { return false }
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	r := ts.raw(t)
	if u := r.ok("CAPABILITY"); !has(u, "STARTTLS", "LOGINDISABLED") {
		t.Fatalf("before TLS: %q", u)
	}
	r.ok("STARTTLS")
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	tc := tls.Client(r.c, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	r = &rawConn{t: t, c: tc, br: bufio.NewReader(tc), tag: r.tag}
	if u := r.ok("CAPABILITY"); has(u, "STARTTLS") || has(u, "LOGINDISABLED") || !has(u, "AUTH=PLAIN") {
		t.Errorf("after TLS: %q", u)
	}
	r.expect("BAD", "", "STARTTLS")
	r.expect("BAD", "", "XYZZY")
	if u := r.ok("ID NIL"); !has(u, "* ID (") {
		t.Errorf("ID over TLS: %q", u)
	}
	r.ok("LOGIN %s %q", testUser, testPass)
	r.expect("BAD", "", "NOOP %s", strings.Repeat("x", 60<<10))
	r.ok("SELECT INBOX")
}
