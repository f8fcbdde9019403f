package node

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/pgp"
	"github.com/tanglemail/tanglemail/internal/pgp/gpgtest"
	"github.com/tanglemail/tanglemail/internal/pgp/wkd"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/storetest"
)

// keyStub is a Web Key Directory stand-in: the keys it knows, by address.
type keyStub map[string]*pgp.PublicKey

func (s keyStub) Lookup(_ context.Context, addr string) (*pgp.PublicKey, error) {
	if k, ok := s[strings.ToLower(addr)]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%s: %w", addr, wkd.ErrNotFound)
}

// Alice writes to bob@example.test, whose OpenPGP key her node finds (a key directory stub holding
// the key gpg made): her node encrypts the mail as PGP/MIME before it is sealed to the gateway, so the
// gateway relays ciphertext. The mail Postfix files in bob's Maildir is DKIM-signed by the gateway,
// From alice@gw.test with her Autocrypt header, carries no plaintext outside its header, and gpg
// decrypts it to alice's text. Alice's Sent copy is the readable message she submitted.
func TestGatewayOutboundEndToEnd(t *testing.T) {
	gpg := gpgtest.New(t)
	bobKey, err := pgp.ParsePublicKey(gpg.GenKey("bob@example.test"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pf := startPostfix(t)
	dns := dnstest.Start(t, `example.test. MX 10 mx.example.test.`, `mx.example.test. A 127.0.0.1`)
	_, alice, _, logs := outboundPair(t, dns, pf.Port, nil, func(c *Config) {
		c.InternetAddress = "alice@gw.test"
		c.E2ELookup = keyStub{"bob@example.test": bobKey}
	})
	if alice.E2E() == nil {
		t.Fatal("no e2e engine on a node with a relay gateway and a claimed address")
	}
	marker := "e2e-marker-a41c9b"
	submit(t, alice, []string{"bob@example.test"}, outboundMessage(alice.Identity().Address(), "bob@example.test", marker))

	waitFor(t, "the mail in bob's Postfix Maildir", 90*time.Second, func() bool { return len(pf.Maildir(t)) == 1 })
	got := pf.Maildir(t)[0]
	verifyDKIM(t, dns, got)
	hdrEnd := bytes.Index(got, []byte("\n\n"))
	if i := bytes.Index(got, []byte("\r\n\r\n")); i >= 0 && (hdrEnd < 0 || i < hdrEnd) {
		hdrEnd = i
	}
	if hdrEnd < 0 {
		t.Fatalf("no header end:\n%s", got)
	}
	hdr, body := got[:hdrEnd], got[hdrEnd:]
	if !bytes.Contains(hdr, []byte("multipart/encrypted")) || !bytes.Contains(hdr, []byte("Autocrypt: addr=alice@gw.test")) {
		t.Fatalf("not PGP/MIME with alice's Autocrypt header:\n%s", got)
	}
	if bytes.Contains(body, []byte(marker)) || bytes.Contains(got, []byte("Hello Bob")) || bytes.Contains(got, []byte("to the Internet")) {
		t.Fatalf("plaintext outside the header (the gateway could read it):\n%s", got)
	}
	if bytes.Contains(got, []byte(alice.Identity().Address().Mail())) {
		t.Errorf("alice's tangle address leaks:\n%s", got)
	}
	// Bob knows alice's key (as from her Autocrypt header): gpg checks her signature too.
	gpg.Run([]byte(alice.E2E().Key.Public().Armored()), "--import")
	plain, errOut, err := gpg.Try(gpgtest.ArmoredMessage(t, got), "--decrypt")
	if err != nil || !bytes.Contains(errOut, []byte("Good signature")) {
		t.Fatalf("gpg --decrypt: %v\n%s", err, errOut)
	}
	if !bytes.Contains(plain, []byte("Hello Bob, "+marker)) || !bytes.Contains(plain, []byte("From: \"Alice\" <alice@gw.test>")) &&
		!bytes.Contains(plain, []byte("From: Alice <alice@gw.test>")) {
		t.Fatalf("gpg decrypted:\n%s", plain)
	}
	sent := inboxMessages(t, alice, store.RoleSent)
	if len(sent) != 1 || !bytes.Contains(sent[0], []byte("Hello Bob, "+marker)) {
		t.Fatalf("alice's Sent copy is not the readable message: %q", sent)
	}
	// ... marked $E2E, so that her clients (the web client, any IMAP client) show it went encrypted.
	if ms := storetest.Mailbox(t, alice.Mailboxes(), store.RoleSent); len(ms) != 1 || !ms[0].Flags.Has(store.E2EKeyword) {
		t.Fatalf("alice's Sent copy is not marked %s", store.E2EKeyword)
	}
	if !strings.Contains(logs.String(), "e2e: relay message encrypted end to end") {
		t.Errorf("no e2e log line:\n%s", logs.String())
	}
	noAddressesLogged(t, logs, alice, "bob@example.test", marker)
}

// Bob (an OpenPGP user on the Internet, gpg) answers alice: his mail, encrypted by gpg to alice's key
// and signed, with his Autocrypt header (and a forged X-Tanglemail-E2E field), reaches the gateway's MX,
// is sealed to alice and filed in her INBOX decrypted (the gateway's Authentication-Results kept), with the node's mark (signature good: the
// Autocrypt key was learnt first) and no other; alice's node has learnt bob's key.
func TestGatewayInboundEndToEnd(t *testing.T) {
	gpg := gpgtest.New(t)
	bobKey, err := pgp.ParsePublicKey(gpg.GenKey("bob@sender.test"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t, `sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`)
	gw, alice, _, _ := outboundPair(t, dns, 9, nil, func(c *Config) {
		c.InternetAddress = "alice@gw.test"
		c.E2ELookup = keyStub{}
	})
	gpg.Run([]byte(alice.E2E().Key.Public().Armored()), "--import")
	marker := "e2e-inbound-3f70d2"
	inner := "Content-Type: text/plain; charset=us-ascii\r\n\r\nHello Alice, " + marker + "\r\n"
	armored := gpg.Run([]byte(inner), "--armor", "--encrypt", "--sign", "-r", "alice@gw.test", "-u", "bob@sender.test")
	msg := gpgtest.PGPMIME(pgp.AutocryptField("bob@sender.test", bobKey, true)+
		"From: Bob <bob@sender.test>\r\nTo: alice@gw.test\r\nSubject: ...\r\nMessage-ID: <"+marker+"@sender.test>\r\n"+
		"Date: Sun, 06 Dec 2026 03:00:00 +0000\r\nX-Tanglemail-E2E: openpgp; forged\r\n", armored)
	if err := sendMX(t, gw.GatewayMXAddr(), "bob@sender.test", []string{"alice@gw.test"}, msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the mail in alice's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, alice, store.RoleInbox)) == 1
	})
	got := string(inboxMessages(t, alice, store.RoleInbox)[0])
	want := "X-Tanglemail-E2E: openpgp; key=" + alice.E2E().Key.Fingerprint() + "; signature=good; signer="
	if !strings.HasPrefix(got, want) || strings.Count(got, "X-Tanglemail-E2E") != 1 || strings.Contains(got, "forged") ||
		!strings.Contains(got, "Hello Alice, "+marker) || !strings.Contains(got, "\r\nAuthentication-Results: mx.gw.test; spf=pass") {
		t.Fatalf("alice's INBOX has:\n%s", got)
	}
	if p, ok, err := alice.E2E().Peers.Get(context.Background(), "bob@sender.test", time.Now()); err != nil || !ok ||
		p.Key.Fingerprint() != bobKey.Fingerprint() {
		t.Fatalf("bob's Autocrypt key not learnt: %v %v", ok, err)
	}
}

// A node whose OpenPGP key is for another address starts without end-to-end encryption (logged), and
// one with a relay gateway but no claimed address has none either; with both, the key is made.
func TestE2EOpen(t *testing.T) {
	other, err := identity.ParseAddress("tm1yqak5faue6m2gttz5w5dq2n0p4ek2vs4wuw7ysax8tqy3gvtt8dzjv2wx6m")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	if _, err := pgp.CreateKey(filepath.Join(dir, pgp.KeyFile), "someone@else.test", cfg.Passphrase); err != nil {
		t.Fatal(err)
	}
	cfg.RelayGateway, cfg.InternetAddress = other, "alice@gw.test"
	if n := startNode(t, cfg); n.E2E() != nil {
		t.Fatal("e2e on with a key for another address")
	}
	cfg = testConfig(t, t.TempDir())
	cfg.RelayGateway = other
	if n := startNode(t, cfg); n.E2E() != nil {
		t.Fatal("e2e on without a claimed address")
	}
	cfg = testConfig(t, t.TempDir())
	cfg.RelayGateway, cfg.InternetAddress = other, "alice@gw.test"
	if n := startNode(t, cfg); n.E2E() == nil || !n.E2E().Key.Public().HasAddress("alice@gw.test") {
		t.Fatal("no e2e engine for the claimed address")
	}
}
