package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/selfsigned"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

type fixture struct {
	g     *Gateway
	st    *store.Store
	dir   string
	addr  string // the MX's host:port
	api   *httptest.Server
	gw    *identity.Identity
	alice *identity.Identity
	dns   *dnstest.Server
	dkim  ed25519.PrivateKey
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	f := &fixture{dir: t.TempDir(), gw: seedID(t, 2), alice: seedID(t, 1), dkim: key}
	f.dns = dnstest.Start(t,
		`sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.sender.test. TXT "v=DMARC1; p=reject"`,
		`sel._domainkey.sender.test. TXT `+dkimRecord(pub),
		`spoof.test. TXT "v=spf1 -all"`,
		`_dmarc.spoof.test. TXT "v=DMARC1; p=reject"`,
	)
	var err error
	f.st, err = store.Open(filepath.Join(f.dir, "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	cert, err := selfsigned.New(selfsigned.Names{DNS: []string{"mx.gw.test"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Identity: f.gw, Queue: func(ctx context.Context, to []identity.Address, msg []byte) (int64, error) {
			id, err := outbox.EnqueueSealed(ctx, f.st, f.gw, tangle.DevNet.ID, to, msg, time.Now())
			return int64(id), err
		}, Dir: f.dir, Domains: []string{"gw.test"},
		Operator: seedID(t, 3).Address(), Policy: Policy{Open: true}, Resolver: f.dns.Resolver(),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, MaxMessageBytes: 100 << 10,
	}
	if mod != nil {
		mod(&cfg)
	}
	f.g, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- f.g.ServeSMTP(ln) }()
	f.api = httptest.NewServer(f.g.Handler())
	t.Cleanup(func() {
		f.api.Close()
		f.g.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeSMTP: %v", err)
		}
	})
	f.claim(t, f.alice, OpClaim, "alice")
	return f
}

func (f *fixture) claim(t *testing.T, id *identity.Identity, op byte, local string) *http.Response {
	t.Helper()
	var nonce [16]byte
	rand.Read(nonce[:])
	c, err := SignClaim(id, op, f.gw.Address(), local, "gw.test", time.Now(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(f.api.URL+"/claim", "application/octet-stream", bytes.NewReader(c.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func (f *fixture) dial(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(f.addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("mta.sender.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func send(c *smtp.Client, from string, to []string, msg []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	w.Write(msg)
	return w.Close()
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// opened returns the messages sealed to id in the store's outbox.
func (f *fixture) opened(t *testing.T, id *identity.Identity) []string {
	t.Helper()
	items, err := f.st.OutboxItems(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	op, _ := seal.NewOpener(id)
	var tag [8]byte
	tk := id.TagKey()
	copy(tag[:], tk[:8])
	var out []string
	for _, it := range items {
		for _, r := range it.Rcpts {
			if r.Rcpt != id.Address().Mail() {
				continue
			}
			if r.State != store.RcptSealed {
				t.Errorf("recipient state %s, want sealed", r.State)
			}
			b := r.Envelope
			count := int(binary.LittleEndian.Uint16(b[1:]))
			b = b[3:]
			var last []byte
			for range count {
				n := int(binary.LittleEndian.Uint32(b))
				last, b = b[4:4+n], b[4+n:]
			}
			m, err := op.Open(tangle.DevNet.ID, tag, last)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Sender.Equal(f.gw.Address()) {
				t.Error("sealed sender is not the gateway")
			}
			mc, err := mail.ParseMailContent(m.Content)
			if err != nil || mc.Inline == nil {
				t.Fatalf("content: %v", err)
			}
			out = append(out, string(mc.Inline))
		}
	}
	return out
}

func message(from, marker string) []byte {
	return []byte("From: Sender <" + from + ">\r\nTo: alice@gw.test\r\nSubject: hello\r\nMessage-ID: <" + marker + "@sender.test>\r\n\r\nsecret body " + marker + "\r\n")
}

func TestMXDelivers(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("no TLS")
	}
	marker := "plaintext-marker-5f1c2a"
	msg := signDKIM(t, f.dkim, "sender.test", string(message("bob@sender.test", marker)))
	if err := send(c, "bob@sender.test", []string{"Alice@GW.test"}, msg); err != nil {
		t.Fatal(err)
	}
	got := f.opened(t, f.alice)
	if len(got) != 1 {
		t.Fatalf("%d messages sealed to alice", len(got))
	}
	m := got[0]
	if !strings.HasPrefix(m, "Authentication-Results: mx.gw.test; spf=pass smtp.mailfrom=sender.test; dkim=pass header.d=sender.test") ||
		!strings.Contains(m, "dmarc=pass header.from=sender.test") || !strings.Contains(m, "with ESMTPS") || !strings.Contains(m, marker) {
		t.Fatalf("delivered message:\n%s", m)
	}
	// Role addresses go to the operator; an unknown one is 550 5.1.1.
	if err := send(c, "bob@sender.test", []string{"postmaster@gw.test"}, message("bob@sender.test", "role")); err != nil {
		t.Fatal(err)
	}
	if got := f.opened(t, seedID(t, 3)); len(got) != 1 {
		t.Fatalf("%d messages sealed to the operator", len(got))
	}
	c.Reset()
	c.Mail("bob@sender.test", nil)
	err := c.Rcpt("nobody@gw.test", nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Fatalf("unknown recipient: %v", err)
	}
	if err := c.Rcpt("alice@other.test", nil); smtpCode(err) != 550 {
		t.Fatalf("other domain: %v", err)
	}
	c.Reset()

	// No plaintext in any file of the gateway's directory.
	f.g.Close()
	f.st.Close()
	filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{marker, "secret body", "hello", "bob@sender.test"} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains %q", p, s)
			}
		}
		return nil
	})
}

func TestMXRefuses(t *testing.T) {
	f := newFixture(t, nil)
	c := f.dial(t)
	// DMARC p=reject: refused after DATA, nothing sealed.
	err := send(c, "x@spoof.test", []string{"alice@gw.test"}, message("ceo@spoof.test", "spoof"))
	if smtpCode(err) != 550 {
		t.Fatalf("spoofed mail: %v", err)
	}
	if got := f.opened(t, f.alice); len(got) != 0 {
		t.Fatal("a rejected mail was queued")
	}
	// Oversize: 552 (the limit is 100 KiB here).
	c.Reset()
	big := append(message("bob@sender.test", "big"), bytes.Repeat([]byte("0123456789abcdef\r\n"), 8000)...)
	if err := send(c, "bob@sender.test", []string{"alice@gw.test"}, big); smtpCode(err) != 552 {
		t.Fatalf("oversize: %v", err)
	}
	if st := f.g.Stats(); st.Refused != 1 || st.Accepted != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A revoked claim no longer delivers; someone else may then claim it.
	if r := f.claim(t, f.alice, OpRevoke, "alice"); r.StatusCode != 200 {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	c2 := f.dial(t)
	c2.Mail("bob@sender.test", nil)
	if err := c2.Rcpt("alice@gw.test", nil); smtpCode(err) != 550 {
		t.Fatalf("revoked: %v", err)
	}
	if r := f.claim(t, seedID(t, 9), OpClaim, "postmaster"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("role claim: %d", r.StatusCode)
	}
}

func TestMXConnectionLimits(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConnsPerIP = 2; c.MsgsPerIPMinute = 2 })
	c1 := f.dial(t)
	f.dial(t)
	conn, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 100)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421 4.7.0") {
		t.Fatalf("third connection got %q", buf[:n])
	}
	for i := range 2 {
		if err := send(c1, "bob@sender.test", []string{"alice@gw.test"}, message("bob@sender.test", "m"+string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := c1.Mail("bob@sender.test", nil); smtpCode(err) != 421 {
		t.Fatalf("third message in a minute: %v", err)
	}
}
