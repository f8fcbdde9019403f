package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/postfixtest"
	"github.com/tanglemail/tanglemail/internal/smtptest"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// startPostfix runs a Debian Postfix playing "the Internet" (postfixtest): mx.example.test, listening
// on a loopback port, offering STARTTLS and delivering example.test to a Maildir (pf.Maildir).
func startPostfix(t *testing.T) *postfixtest.Postfix {
	t.Helper()
	return postfixtest.Start(t, postfixtest.Config{Hostname: "mx.example.test", TLS: true, Deliver: "example.test"})
}

// outboundPair starts a gateway node for gw.test (relaying to port) and alice's node configured to
// relay through it, with alice@gw.test claimed; dns gets the gateway's DKIM record. mod changes the
// gateway's configuration, amod alice's (either may be nil).
func outboundPair(t *testing.T, dns *dnstest.Server, port int, mod, amod func(*Config)) (gw, alice *Node, gcfg Config, logs *testwait.Buffer) {
	t.Helper()
	logs = &testwait.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gcfg = gatewayConfig(t, dns)
	gcfg.Log = log
	gcfg.Gateway.RelayPort = port
	gcfg.Gateway.RelayMinRetry = 50 * time.Millisecond
	if mod != nil {
		mod(&gcfg)
	}
	gw = startNode(t, gcfg)
	for _, rec := range gw.GatewayDNSRecords("") {
		if strings.Contains(rec, "_domainkey") {
			if err := dns.Add(rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	acfg := testConfig(t, t.TempDir())
	acfg.Bootstrap = gw.Network().Addrs()
	acfg.RelayGateway = gw.Identity().Address()
	acfg.Log = log
	if amod != nil {
		amod(&acfg)
	}
	alice = startNode(t, acfg)
	waitFor(t, "peering", 10*time.Second, func() bool { return gw.Network().PeerCount() == 1 })
	claimAddress(t, gw, alice.Identity(), "alice")
	return gw, alice, gcfg, logs
}

// noAddressesLogged checks the INFO logs of an outbound test for addresses and content.
func noAddressesLogged(t *testing.T, logs *testwait.Buffer, alice *Node, secrets ...string) {
	t.Helper()
	out := logs.String()
	if !strings.Contains(out, "gateway: relay") {
		t.Fatalf("no relay log lines:\n%s", out)
	}
	for _, s := range append(secrets, alice.Identity().Address().String(), "alice@gw.test", "Hello Bob") {
		if strings.Contains(out, s) {
			t.Errorf("the INFO logs contain %q:\n%s", s, out)
		}
	}
}

func outboundMessage(alice identity.Address, to, marker string) string {
	return "From: Alice <" + alice.Mail() + ">\r\nTo: <" + to + ">\r\nSubject: to the Internet " + marker + "\r\n" +
		"Message-ID: <" + marker + "@tangle>\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\n\r\nHello Bob, " + marker + "\r\n"
}

// verifyDKIM checks msg's DKIM signature for gw.test against the test's DNS twice: with dkimpy
// (Debian's python3-dkim), an implementation independent of the signer's go-msgauth, and with
// go-msgauth's verifier. Without python3-dkim only the second runs (under CI: fails).
func verifyDKIM(t *testing.T, dns *dnstest.Server, msg []byte) {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(d string) ([]string, error) {
		return dns.Resolver().LookupTXT(context.Background(), d)
	}})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "gw.test" {
		t.Fatalf("DKIM verification: %v %+v\n%s", err, vs, msg)
	}
	verifyDKIMPy(t, dns, msg)
}

// dkimpyScript verifies the message on stdin with dkimpy; the selector's TXT record comes from argv
// (name, value): the test's DNS, never the machine's resolver.
const dkimpyScript = `import sys, dkim
name, txt = sys.argv[1].lower().rstrip("."), sys.argv[2].encode()
def dnsfunc(q, timeout=5):
    q = q.decode() if isinstance(q, bytes) else q
    return txt if q.lower().rstrip(".") == name else b""
sys.exit(0 if dkim.verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc) else 1)
`

func verifyDKIMPy(t *testing.T, dns *dnstest.Server, msg []byte) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import dkim").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3-dkim is not installed, and CI must verify DKIM with it: add it to PKGS in .ci/run")
		}
		t.Log("python3-dkim not installed (apt-get install python3-dkim): DKIM checked by go-msgauth only")
		return
	}
	// The selector and domain of the (one) signature: s= and d= of DKIM-Signature.
	// (A Maildir file has bare LF line ends.)
	hdr, _, _ := strings.Cut(strings.ReplaceAll(string(msg), "\r\n", "\n"), "\n\n")
	unfolded := strings.NewReplacer("\n ", " ", "\n\t", " ").Replace(hdr)
	var sel, dom string
	for _, line := range strings.Split(unfolded, "\n") {
		if v, ok := strings.CutPrefix(line, "DKIM-Signature:"); ok {
			for _, tag := range strings.Split(v, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(tag), "=")
				switch k {
				case "s":
					sel = strings.TrimSpace(val)
				case "d":
					dom = strings.TrimSpace(val)
				}
			}
		}
	}
	name := sel + "._domainkey." + dom
	txts, err := dns.Resolver().LookupTXT(context.Background(), name)
	if err != nil || len(txts) == 0 {
		t.Fatalf("the DKIM record %s: %v", name, err)
	}
	cmd := exec.Command("/usr/bin/python3", "-c", dkimpyScript, name, strings.Join(txts, ""))
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dkimpy does not verify the gateway's DKIM signature (%v): %s\n%s", err, out, msg)
	}
}

// Alice (a tanglemail node) writes to bob@example.test through her SMTP submission port; the mail is
// sealed to the gateway node, crosses the Tangle, and the gateway delivers it — From alice@gw.test,
// DKIM-signed for gw.test — to a real Postfix, which files it in bob's Maildir. The signature verifies
// against the DNS record (dkimpy, not the signer's library, and go-msgauth), alice gets a delivery report, and the
// gateway keeps nothing of it afterwards.
func TestGatewayOutboundPostfix(t *testing.T) {
	pf := startPostfix(t)
	dns := dnstest.Start(t, `example.test. MX 10 mx.example.test.`, `mx.example.test. A 127.0.0.1`)
	gw, alice, gcfg, logs := outboundPair(t, dns, pf.Port, nil, nil)
	marker := "outbound-marker-5d1c07"
	submit(t, alice, []string{"bob@example.test"}, outboundMessage(alice.Identity().Address(), "bob@example.test", marker))

	waitFor(t, "the mail in bob's Postfix Maildir", 90*time.Second, func() bool { return len(pf.Maildir(t)) == 1 })
	got := pf.Maildir(t)[0]
	if !bytes.Contains(got, []byte("From: \"Alice\" <alice@gw.test>")) && !bytes.Contains(got, []byte("From: Alice <alice@gw.test>")) {
		t.Errorf("From not the claimed address:\n%s", got)
	}
	if !bytes.Contains(got, []byte("Return-Path: <alice@gw.test>")) || bytes.Contains(got, []byte(alice.Identity().Address().Mail())) {
		t.Errorf("envelope sender, or alice's tangle address leaks:\n%s", got)
	}
	if !bytes.Contains(got, []byte("ESMTPS")) {
		t.Errorf("not delivered under STARTTLS:\n%s", got)
	}
	verifyDKIM(t, dns, got)

	waitFor(t, "the delivery report in alice's INBOX", 90*time.Second, func() bool {
		return len(inboxMessages(t, alice, store.RoleInbox)) == 1
	})
	rep := string(inboxMessages(t, alice, store.RoleInbox)[0])
	if !strings.Contains(rep, "Action: delivered") || !strings.Contains(rep, "bob@example.test") {
		t.Fatalf("alice's report:\n%s", rep)
	}
	// The gateway's INBOX never shows the relay message, and its queue is empty.
	if n := len(inboxMessages(t, gw, store.RoleInbox)); n != 0 {
		t.Errorf("the gateway's INBOX has %d messages", n)
	}
	if st := gw.GatewayRelay().Stats(context.Background()); st.Delivered != 1 || st.Pending != 0 {
		t.Errorf("relay stats %+v", st)
	}
	noAddressesLogged(t, logs, alice, "bob@example.test", marker)
	gw.Close()
	// No file of the gateway's data directory holds the relayed message once it is delivered: not
	// relay.db (secure_delete), not the mailbox store it passed through (secure_delete and a WAL
	// checkpoint after the hand-over), not a WAL.
	noneInFiles(t, gcfg.DataDir, marker, "Tanglemail-Relay", "bob@example.test")
}

// An unreachable destination: the gateway retries, then (MaxAge) alice gets a DSN bounce in her
// INBOX. And a gateway node restarted mid-queue delivers what it acknowledged: here the first
// destination is down while the gateway restarts, the gateway's queue holds the message across it.
func TestGatewayOutboundBounceAndRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // connections to port are refused until something listens there
	dns := dnstest.Start(t, `down.test. MX 10 mx.down.test.`, `mx.down.test. A 127.0.0.1`)
	gw, alice, gcfg, logs := outboundPair(t, dns, port, func(c *Config) { c.Gateway.RelayMaxAge = 3 * time.Second }, nil)
	submit(t, alice, []string{"bob@down.test"}, outboundMessage(alice.Identity().Address(), "bob@down.test", "bounce-7f3a"))
	waitFor(t, "the DSN in alice's INBOX", 90*time.Second, func() bool {
		return len(inboxMessages(t, alice, store.RoleInbox)) == 1
	})
	dsn := string(inboxMessages(t, alice, store.RoleInbox)[0])
	for _, want := range []string{"Action: failed", "Status: 5.4.7", "Final-Recipient: rfc822; bob@down.test", "multipart/report"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if st := gw.GatewayRelay().Stats(context.Background()); st.Failed != 1 || st.Retried == 0 {
		t.Errorf("relay stats %+v", st)
	}

	// Restart mid-queue: a second message is acknowledged (queued) while its MX is down, the gateway
	// node is closed and started again on the same data directory, the MX comes up, the mail arrives.
	gcfg.Gateway.RelayMaxAge = time.Hour
	submit(t, alice, []string{"bob@down.test"}, outboundMessage(alice.Identity().Address(), "bob@down.test", "restart-2b9e"))
	waitFor(t, "the relay message queued at the gateway", 90*time.Second, func() bool {
		st := gw.GatewayRelay().Stats(context.Background())
		return st.Pending == 1 && st.Retried > 0
	})
	gw.Close()
	mx := smtptest.StartMX(t, port)
	gw2 := startNode(t, gcfg)
	waitFor(t, "delivery after the restart", 90*time.Second, func() bool { return len(mx.Mails()) == 1 })
	m := mx.Mails()[0].Data
	if !bytes.Contains(m, []byte("restart-2b9e")) {
		t.Fatalf("delivered:\n%s", m)
	}
	verifyDKIM(t, dns, m)
	waitFor(t, "the queue empty", 30*time.Second, func() bool { return gw2.GatewayRelay().Stats(context.Background()).Pending == 0 })
	noAddressesLogged(t, logs, alice, "bob@down.test", "bounce-7f3a", "restart-2b9e")
}

// The gateway a claim was made on is recorded in the data directory and forgotten by its revoke.
func TestRelayGatewayFile(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := LoadRelayGateway(dir); ok || err != nil {
		t.Fatalf("empty dir: %v %v", ok, err)
	}
	a, _ := identity.ParseAddress("tm1yqak5faue6m2gttz5w5dq2n0p4ek2vs4wuw7ysax8tqy3gvtt8dzjv2wx6m")
	b, _ := identity.ParseAddress("tm19qp6zpal708pp0sawrw33e6tczvk0exkxzd62r2lrhwgveqj25cmshel8e9")
	if err := SaveRelayGateway(dir, a); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := LoadRelayGateway(dir); !ok || err != nil || !got.Equal(a) {
		t.Fatalf("load: %v %v %v", got, ok, err)
	}
	if err := SaveInternetAddress(dir, "not an address"); err == nil {
		t.Fatal("a bad Internet address was recorded")
	}
	if err := SaveInternetAddress(dir, "Alice@GW.test"); err != nil {
		t.Fatal(err)
	}
	if got, err := ClaimedInternetAddress(dir, a); err != nil || got != "alice@gw.test" {
		t.Fatalf("claimed address on the recorded gateway: %q %v", got, err)
	}
	if got, err := ClaimedInternetAddress(dir, b); err != nil || got != "" {
		t.Fatalf("claimed address on another gateway: %q %v", got, err)
	}
	if err := ForgetRelayGateway(dir, b); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := LoadRelayGateway(dir); !ok {
		t.Fatal("forgot the gateway on another gateway's revoke")
	}
	if err := ForgetRelayGateway(dir, a); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := LoadRelayGateway(dir); ok {
		t.Fatal("still recorded after the revoke")
	}
	if _, ok, _ := LoadInternetAddress(dir); ok {
		t.Fatal("the Internet address is still recorded after the revoke")
	}
	os.WriteFile(filepath.Join(dir, RelayGatewayFile), []byte("junk\n"), 0o600)
	if _, _, err := LoadRelayGateway(dir); err == nil {
		t.Fatal("junk accepted")
	}
}

// TestGatewayOutboundLarge: a mail with a 2 MiB attachment to an Internet recipient (spooled at
// submission, sealed to the gateway as blob mail, pulled by the gateway node from alice's) reaches a
// real Postfix whole: the attachment byte for byte, DKIM-signed over the whole message.
func TestGatewayOutboundLarge(t *testing.T) {
	pf := startPostfix(t)
	dns := dnstest.Start(t, `example.test. MX 10 mx.example.test.`, `mx.example.test. A 127.0.0.1`)
	_, alice, _, logs := outboundPair(t, dns, pf.Port, nil, nil)
	defer func() {
		if t.Failed() {
			t.Logf("node logs:\n%s", logs.String())
		}
	}()
	marker := "outbound-large-7a31c2"
	var att strings.Builder
	for i := 0; att.Len() < 2<<20; i++ {
		fmt.Fprintf(&att, "%s line %07d of the attachment, base64-safe text ABCDEFGHIJKLMNOP\r\n", marker, i)
	}
	from := alice.Identity().Address().Mail()
	raw := "From: Alice <" + from + ">\r\nTo: <bob@example.test>\r\nSubject: large " + marker + "\r\n" +
		"Message-ID: <" + marker + "@tangle>\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello Bob\r\n" +
		"--b\r\nContent-Type: text/plain; name=\"big.txt\"\r\nContent-Disposition: attachment\r\n\r\n" +
		att.String() + "--b--\r\n"
	submit(t, alice, []string{"bob@example.test"}, raw)

	waitFor(t, "the large mail in bob's Postfix Maildir", 90*time.Second, func() bool { return len(pf.Maildir(t)) == 1 })
	got := pf.Maildir(t)[0]
	// Postfix's Maildir delivery stores lines with LF endings.
	if !bytes.Contains(got, []byte(strings.ReplaceAll(att.String(), "\r\n", "\n"))) {
		t.Fatalf("the attachment did not arrive whole: %d bytes delivered, attachment %d", len(got), att.Len())
	}
	verifyDKIM(t, dns, got)
}
