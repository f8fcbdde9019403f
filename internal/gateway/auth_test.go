package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/tanglemail/tanglemail/internal/dnstest"
)

// signDKIM signs msg for domain with selector "sel" and returns the signed message.
func signDKIM(t *testing.T, key ed25519.PrivateKey, domain string, msg string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: "sel", Signer: key})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func dkimRecord(pub ed25519.PublicKey) string {
	return `"v=DKIM1; k=ed25519; p=` + base64.StdEncoding.EncodeToString(pub) + `"`
}

func TestAuthenticate(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	dns := dnstest.Start(t,
		`good.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.good.test. TXT "v=DMARC1; p=reject"`,
		`sel._domainkey.good.test. TXT `+dkimRecord(pub),
		`strict.test. TXT "v=spf1 -all"`,
		`_dmarc.strict.test. TXT "v=DMARC1; p=reject"`,
		`quar.test. TXT "v=spf1 -all"`,
		`_dmarc.quar.test. TXT "v=DMARC1; p=quarantine"`,
		`nodmarc.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.org.test. TXT "v=DMARC1; p=none; sp=reject"`,
		`sub.org.test. TXT "v=spf1 -all"`,
		`soft.test. TXT "v=spf1 ~all"`,
		`pct0.test. TXT "v=spf1 -all"`,
		`_dmarc.pct0.test. TXT "v=DMARC1; p=reject; pct=0"`,
	)
	r := dns.Resolver()
	ctx := context.Background()
	ip := net.IPv4(127, 0, 0, 1)
	other := net.IPv4(127, 0, 0, 2)
	msg := func(from string) string {
		return "From: Someone <someone@" + from + ">\r\nTo: alice@gw.test\r\nSubject: hi\r\n\r\nbody\r\n"
	}
	for _, c := range []struct {
		name                 string
		ip                   net.IP
		mailFrom             string
		msg                  []byte
		spf, dkimRes, dmarcR authres.ResultValue
		reject               bool
	}{
		{"all pass", ip, "someone@good.test", signDKIM(t, key, "good.test", msg("good.test")), "pass", "pass", "pass", false},
		{"spf only", ip, "someone@good.test", []byte(msg("good.test")), "pass", "none", "pass", false},
		{"dkim only", other, "someone@good.test", signDKIM(t, key, "good.test", msg("good.test")), "fail", "pass", "pass", false},
		{"spoofed, reject", other, "someone@good.test", []byte(msg("good.test")), "fail", "none", "fail", true},
		{"tampered body", other, "x@good.test", bytes.Replace(signDKIM(t, key, "good.test", msg("good.test")), []byte("body"), []byte("bodY"), 1), "fail", "fail", "fail", true},
		{"unaligned spf", ip, "someone@good.test", []byte(msg("strict.test")), "pass", "none", "fail", true},
		{"quarantine", ip, "x@quar.test", []byte(msg("quar.test")), "fail", "none", "fail", false},
		{"no dmarc record", ip, "x@nodmarc.test", []byte(msg("nodmarc.test")), "pass", "none", "none", false},
		{"org sp=reject", ip, "x@sub.org.test", []byte(msg("sub.org.test")), "fail", "none", "fail", true},
		{"reject at pct=0", ip, "x@pct0.test", []byte(msg("pct0.test")), "fail", "none", "fail", false},
		{"softfail, no record", ip, "x@soft.test", []byte(msg("soft.test")), "softfail", "none", "none", false},
		{"no spf record", ip, "x@none.test", []byte(msg("none.test")), "none", "none", "none", false},
		{"two froms", ip, "x@good.test", []byte("From: a@good.test\r\nFrom: b@good.test\r\n\r\nx\r\n"), "pass", "none", "permerror", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := Authenticate(ctx, r, c.ip, "mta.example", c.mailFrom, c.msg)
			dk := authres.ResultNone
			if len(a.DKIM) > 0 {
				dk = a.DKIM[0].Value
			}
			if a.SPF != c.spf || dk != c.dkimRes || a.DMARC != c.dmarcR || a.Reject != c.reject {
				t.Fatalf("spf=%s dkim=%s dmarc=%s reject=%v, want %s %s %s %v (%+v)", a.SPF, dk, a.DMARC, a.Reject,
					c.spf, c.dkimRes, c.dmarcR, c.reject, a)
			}
			f := a.Field("mx.gw.test")
			if !strings.HasPrefix(f, "Authentication-Results: mx.gw.test;") || !strings.HasSuffix(f, "\r\n") ||
				!strings.Contains(f, "dmarc="+string(c.dmarcR)) || !strings.Contains(f, "spf="+string(c.spf)) {
				t.Fatalf("field %q", f)
			}
			if _, _, err := authres.Parse(strings.TrimSpace(strings.TrimPrefix(f, "Authentication-Results:"))); err != nil {
				t.Fatalf("field does not parse: %v", err)
			}
		})
	}
}

func TestAuthenticateDNSDown(t *testing.T) {
	// A resolver whose server is gone: every check is a temperror and nothing is rejected.
	dns := dnstest.Start(t)
	r := dns.Resolver()
	r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Err: errTestDown{}}
	}
	a := Authenticate(context.Background(), r, net.IPv4(127, 0, 0, 1), "mta.example", "x@good.test",
		[]byte("From: x@good.test\r\n\r\nbody\r\n"))
	if a.SPF != authres.ResultTempError || a.DMARC != authres.ResultTempError || a.Reject {
		t.Fatalf("%+v", a)
	}
}

type errTestDown struct{}

func (errTestDown) Error() string   { return "test: DNS down" }
func (errTestDown) Timeout() bool   { return true }
func (errTestDown) Temporary() bool { return true }

// fromDomain reads the header of untrusted Internet mail: it never panics and returns a checked,
// lower-case name or "".
func FuzzFromDomain(f *testing.F) {
	f.Add([]byte("From: Someone <someone@Example.ORG>\r\nTo: x@gw.test\r\n\r\nbody\r\n"))
	f.Add([]byte("From: a@b.test, c@d.test\r\n\r\n"))
	f.Add([]byte("From: =?utf-8?q?x?= <\"weird local\"@xn--bcher-kva.test>\r\n\r\n"))
	f.Add([]byte("no header at all"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		d := fromDomain(msg)
		if d != strings.ToLower(d) {
			t.Fatalf("domain %q not lower case", d)
		}
	})
}
