package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/smtptest"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// relayFixture is a gateway (no MX served) with alice's claim alice@gw.test, its relay, a fake MX for
// example.test and a DNS server with the MX and the gateway's DKIM record.
type relayFixture struct {
	g       *Gateway
	r       *Relay
	dir     string
	cfg     Config
	rcfg    RelayConfig
	gw      *identity.Identity
	alice   *identity.Identity
	mx      *smtptest.MX
	dns     *dnstest.Server
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	reports []queued
}

type queued struct {
	to  identity.Address
	msg []byte
}

func dkimKey(t testing.TB) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	rec := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	var parts []string // a TXT record's strings are at most 255 octets
	for len(rec) > 0 {
		n := min(len(rec), 255)
		parts = append(parts, `"`+rec[:n]+`"`)
		rec = rec[n:]
	}
	return key, strings.Join(parts, " ")
}

func newRelayFixture(t testing.TB, mod func(*RelayConfig)) *relayFixture {
	t.Helper()
	f := &relayFixture{dir: t.TempDir(), gw: seedID(t, 2), alice: seedID(t, 1)}
	f.mx = smtptest.StartMX(t, 0)
	key, rec := dkimKey(t)
	f.dns = dnstest.Start(t,
		`example.test. MX 10 mx.example.test.`,
		`mx.example.test. A 127.0.0.1`,
		`tanglemail._domainkey.gw.test. TXT `+rec,
		`nomail.test. MX 0 .`,
		`down.test. MX 10 mx.down.test.`,
		`mx.down.test. A 127.0.0.1`,
	)
	f.cfg = Config{
		Identity: f.gw, Queue: func(ctx context.Context, to []identity.Address, msg []byte) (int64, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.reports = append(f.reports, queued{to[0], bytes.Clone(msg)})
			return int64(len(f.reports)), nil
		}, Dir: f.dir, Domains: []string{"gw.test"}, Policy: Policy{Open: true}, Resolver: f.dns.Resolver(),
	}
	f.rcfg = RelayConfig{DKIMKey: key, DKIMSelector: "tanglemail", Port: f.mx.Port, MinRetry: 20 * time.Millisecond,
		MaxRetry: 50 * time.Millisecond, Timeout: 10 * time.Second, DeliveredReports: true}
	if mod != nil {
		mod(&f.rcfg)
	}
	f.open(t)
	var nonce [16]byte
	rand.Read(nonce[:])
	c, err := SignClaim(f.alice, OpClaim, f.gw.Address(), "alice", "gw.test", time.Now(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.Claims().Apply(context.Background(), c, time.Now()); err != nil {
		t.Fatal(err)
	}
	return f
}

// open opens the gateway and its relay (not running).
func (f *relayFixture) open(t testing.TB) {
	t.Helper()
	var err error
	cfg := f.cfg
	cfg.Domains = []string{"gw.test"}
	if f.g, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if f.r, err = f.g.NewRelay(f.rcfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.close(t) })
}

func (f *relayFixture) run() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	go func() { f.done <- f.r.Run(ctx) }()
}

func (f *relayFixture) close(t testing.TB) {
	if f.cancel != nil {
		f.cancel()
		<-f.done
		f.cancel = nil
	}
	if f.r != nil {
		f.r.Close()
		f.g.Close()
		f.r = nil
	}
}

func (f *relayFixture) reportsFor(a identity.Address) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, q := range f.reports {
		if q.to.Equal(a) {
			out = append(out, string(q.msg))
		}
	}
	return out
}

func relayMsg(t testing.TB, from string, rcpts ...string) []byte {
	t.Helper()
	msg := "From: Alice <" + from + ">\r\nTo: <" + rcpts[0] + ">\r\nSubject: hello Internet\r\n" +
		"Date: Sun, 06 Dec 2026 03:00:00 +0000\r\nMessage-ID: <m1@tangle>\r\n\r\nHello Bob.\r\n"
	raw, err := mail.EncodeRelay(rcpts, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestRelayDelivers: a claimed sender's mail goes to the recipient's MX under STARTTLS, from the
// claimed address, DKIM-signed for the gateway's domain (verified against the DNS record, not by the
// signer), and the sender gets a delivered report; the queue is then empty.
func TestRelayDelivers(t *testing.T) {
	f := newRelayFixture(t, nil)
	ctx := context.Background()
	f.run()
	if err := f.r.Submit(ctx, f.alice.Address(), relayMsg(t, f.alice.Address().Mail(), "bob@example.test")); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "delivery", 20*time.Second, func() bool { return len(f.mx.Mails()) == 1 })
	m := f.mx.Mails()[0]
	if m.From != "alice@gw.test" || m.Rcpt != "bob@example.test" || !m.TLS {
		t.Fatalf("envelope %q → %q, tls %v", m.From, m.Rcpt, m.TLS)
	}
	if bytes.Contains(m.Data, []byte(f.alice.Address().Mail())) || !bytes.Contains(m.Data, []byte("From: \"Alice\" <alice@gw.test>")) &&
		!bytes.Contains(m.Data, []byte("From: Alice <alice@gw.test>")) {
		t.Errorf("From not rewritten:\n%s", m.Data)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: func(d string) ([]string, error) {
		return f.dns.Resolver().LookupTXT(context.Background(), d)
	}})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "gw.test" {
		t.Fatalf("DKIM: %v %+v", err, vs)
	}
	testwait.For(t, "delivered report", 10*time.Second, func() bool { return len(f.reportsFor(f.alice.Address())) == 1 })
	rep := f.reportsFor(f.alice.Address())[0]
	if !strings.Contains(rep, "Action: delivered") || !strings.Contains(rep, "Final-Recipient: rfc822; bob@example.test") {
		t.Errorf("report:\n%s", rep)
	}
	testwait.For(t, "empty queue", 10*time.Second, func() bool { return f.r.Stats(ctx).Pending == 0 })
	// The same request again (handed over twice after a crash) is not sent again.
	if err := f.r.Submit(ctx, f.alice.Address(), relayMsg(t, f.alice.Address().Mail(), "bob@example.test")); err != nil {
		t.Fatal(err)
	}
	if st := f.r.Stats(ctx); st.Pending != 0 || st.Delivered != 1 {
		t.Errorf("stats after a repeated request: %+v", st)
	}
}

// TestRelayRefusesUnclaimed: the gateway is no open relay: an identity without a claim gets a DSN
// (5.7.1) and nothing is queued or sent.
func TestRelayRefusesUnclaimed(t *testing.T) {
	f := newRelayFixture(t, nil)
	ctx := context.Background()
	f.run()
	mallory := seedID(t, 9)
	err := f.r.Submit(ctx, mallory.Address(), relayMsg(t, mallory.Address().Mail(), "bob@example.test"))
	if !errors.Is(err, ErrRelayRefused) {
		t.Fatalf("Submit = %v, want ErrRelayRefused", err)
	}
	reps := f.reportsFor(mallory.Address())
	if len(reps) != 1 || !strings.Contains(reps[0], "Status: 5.7.1") || !strings.Contains(reps[0], "Action: failed") {
		t.Fatalf("reports %q", reps)
	}
	if st := f.r.Stats(ctx); st.Pending != 0 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
	if len(f.mx.Mails()) != 0 {
		t.Fatal("an unclaimed identity's mail was sent")
	}
	// A malformed request is refused too.
	if err := f.r.Submit(ctx, f.alice.Address(), []byte("Tanglemail-Relay: 1\r\n\r\nx")); !errors.Is(err, ErrRelayRefused) {
		t.Fatalf("malformed: %v", err)
	}
}

// TestRelayRateLimit: beyond PerHour messages an hour per claim, requests are refused with a DSN.
func TestRelayRateLimit(t *testing.T) {
	f := newRelayFixture(t, func(c *RelayConfig) { c.PerHour = 2 })
	ctx := context.Background()
	for i := range 3 {
		err := f.r.Submit(ctx, f.alice.Address(), relayMsg(t, f.alice.Address().Mail(), "bob"+strconv.Itoa(i)+"@example.test"))
		if (i < 2) != (err == nil) || (i == 2 && !errors.Is(err, ErrRelayRefused)) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if st := f.r.Stats(ctx); st.Pending != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRelayBounces: a 5xx from the MX, a null MX and an MX that never answers (after MaxAge) end in a
// failure DSN for the sender, and the queue forgets the message.
func TestRelayBounces(t *testing.T) {
	f := newRelayFixture(t, func(c *RelayConfig) { c.MaxAge = 300 * time.Millisecond })
	ctx := context.Background()
	f.mx.RcptErr = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	// example.test answers 550 5.1.1; nomail.test has a null MX (RFC 7505).
	f.run()
	for _, rc := range []string{"bob@example.test", "x@nomail.test"} {
		if err := f.r.Submit(ctx, f.alice.Address(), relayMsg(t, f.alice.Address().Mail(), rc)); err != nil {
			t.Fatal(err)
		}
	}
	testwait.For(t, "two bounces", 20*time.Second, func() bool { return len(f.reportsFor(f.alice.Address())) == 2 })
	all := strings.Join(f.reportsFor(f.alice.Address()), "\n")
	for _, want := range []string{"Status: 5.1.1", "no such user", "Status: 5.1.10", "Action: failed"} {
		if !strings.Contains(all, want) {
			t.Errorf("bounces lack %q:\n%s", want, all)
		}
	}
	testwait.For(t, "empty queue", 10*time.Second, func() bool { return f.r.Stats(ctx).Pending == 0 })
}

// TestRelayUnreachableExpires: an MX that cannot be reached is retried with backoff until MaxAge,
// then the sender gets a DSN (5.4.7).
func TestRelayUnreachableExpires(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there any more: connections are refused
	f := newRelayFixture(t, func(c *RelayConfig) { c.MaxAge = 500 * time.Millisecond; c.Port = port })
	ctx := context.Background()
	f.run()
	if err := f.r.Submit(ctx, f.alice.Address(), relayMsg(t, f.alice.Address().Mail(), "bob@down.test")); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "bounce", 20*time.Second, func() bool { return len(f.reportsFor(f.alice.Address())) == 1 })
	rep := f.reportsFor(f.alice.Address())[0]
	if !strings.Contains(rep, "Status: 5.4.7") || !strings.Contains(rep, "Final-Recipient: rfc822; bob@down.test") {
		t.Errorf("bounce:\n%s", rep)
	}
	if st := f.r.Stats(ctx); st.Retried == 0 || st.Failed != 1 || st.Pending != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestRelayRestart: what Submit acknowledged survives closing the gateway before any delivery, and is
// delivered by the reopened gateway; the plaintext is gone from relay.db once delivered.
func TestRelayRestart(t *testing.T) {
	f := newRelayFixture(t, nil)
	ctx := context.Background()
	if err := f.r.Submit(ctx, f.alice.Address(), relayMsg(t, f.alice.Address().Mail(), "bob@example.test")); err != nil {
		t.Fatal(err)
	}
	f.close(t)
	f.open(t)
	f.run()
	testwait.For(t, "delivery after restart", 20*time.Second, func() bool { return len(f.mx.Mails()) == 1 })
	testwait.For(t, "empty queue", 10*time.Second, func() bool { return f.r.Stats(ctx).Pending == 0 })
	f.close(t)
	for _, name := range []string{RelayFile, RelayFile + "-wal"} {
		b, err := os.ReadFile(filepath.Join(f.dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("Hello Bob.")) {
			t.Errorf("%s still holds the delivered message's text", name)
		}
	}
}

func TestRemoveFields(t *testing.T) {
	in := "From: a\r\n\tcontinued\r\nTo: b\r\nSender: c\r\nSubject: s\r\n\r\nFrom: body\r\n"
	if got := string(removeFields([]byte(in), "from", "SENDER")); got != "To: b\r\nSubject: s\r\n\r\nFrom: body\r\n" {
		t.Fatalf("%q", got)
	}
}
