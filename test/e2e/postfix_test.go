package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/gateway"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/postfixtest"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/storetest"
)

// A real Postfix ("the Internet") delivers a DKIM-signed mail for alice@gw.test, routed by transport_maps
// to a gateway node's MX (STARTTLS); the gateway checks SPF/DKIM/DMARC, seals it to alice's identity and
// publishes it; alice's node files it in INBOX with the Authentication-Results. A spoofed mail (DMARC
// p=reject) and one for an unclaimed address are refused with 550 and bounced by Postfix.
func TestPostfixToGateway(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	dns := dnstest.Start(t,
		`sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.sender.test. TXT "v=DMARC1; p=reject"`,
		`sel._domainkey.sender.test. TXT "v=DKIM1; k=ed25519; p=`+base64.StdEncoding.EncodeToString(pub)+`"`,
		`spoof.test. TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`_dmarc.spoof.test. TXT "v=DMARC1; p=reject"`,
	)
	gcfg := node.DevnetConfig(t.TempDir())
	gcfg.Gateway = node.GatewayConfig{Enabled: true, Domains: []string{"gw.test"}, MXListen: "127.0.0.1:0",
		ClaimListen: "127.0.0.1:0", Policy: gateway.Policy{Open: true}, Resolver: dns.Resolver()}
	gw, err := node.Start(context.Background(), gcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	acfg := node.DevnetConfig(t.TempDir())
	acfg.Bootstrap = gw.Network().Addrs()
	alice, err := node.Start(context.Background(), acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	waitFor(t, "peering", 20*time.Second, func() bool { return gw.Network().PeerCount() == 1 })

	if _, err := gateway.Claim(context.Background(), nil, "http://"+gw.GatewayClaimAddr(), alice.Identity(), gateway.OpClaim, "alice", "gw.test"); err != nil {
		t.Fatal(err)
	}

	// Postfix as the sender's MTA: it routes gw.test by transport_maps to the gateway's MX, no DNS,
	// STARTTLS when the gateway offers it. Everything else (such as its bounces to the test's senders)
	// is discarded: no lookup ever leaves the machine.
	pf := postfixtest.Start(t, postfixtest.Config{
		Hostname: "mta.sender.test",
		Main: `myorigin = sender.test
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = texthash:$config_directory/transport
smtp_tls_security_level = may
smtp_tls_loglevel = 1`,
		Files: map[string]string{"transport": "gw.test smtp:[" + strings.Replace(gw.GatewayMXAddr(), ":", "]:", 1) + "\n* discard:\n"},
	})
	raw := "From: Bob <bob@sender.test>\r\nTo: Alice <alice@gw.test>\r\nSubject: from Postfix\r\n" +
		"Message-ID: <postfix-e2e@sender.test>\r\nDate: Sun, 06 Dec 2026 03:00:00 +0000\r\n\r\nHello Alice, through the gateway.\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(raw), &dkim.SignOptions{Domain: "sender.test", Selector: "sel", Signer: key}); err != nil {
		t.Fatal(err)
	}
	spoofed := "From: CEO <ceo@spoof.test>\r\nTo: alice@gw.test\r\nSubject: wire money\r\n\r\nnow\r\n"
	for _, m := range []struct {
		from, to, msg string
	}{
		{"bob@sender.test", "alice@gw.test", signed.String()},
		{"ceo@spoof.test", "alice@gw.test", spoofed},
		{"bob@sender.test", "nobody@gw.test", raw},
	} {
		c, err := smtp.Dial(pf.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendMail(m.from, []string{m.to}, strings.NewReader(m.msg)); err != nil {
			t.Fatalf("submitting to postfix: %v", err)
		}
		c.Quit()
	}
	waitFor(t, "postfix's three deliveries", 60*time.Second, func() bool {
		l := pf.Log()
		return strings.Contains(l, "status=sent") && strings.Contains(l, "dsn=5.7.1") && strings.Contains(l, "dsn=5.1.1")
	})
	l := pf.Log()
	if !strings.Contains(l, "to=<alice@gw.test>, relay=127.0.0.1") || !strings.Contains(l, "Trusted TLS connection established") && !strings.Contains(l, "Untrusted TLS connection established") && !strings.Contains(l, "Anonymous TLS connection established") {
		t.Errorf("postfix did not relay to the gateway over TLS:\n%s", l)
	}
	if !strings.Contains(l, "5.7.1") || !strings.Contains(l, "5.1.1") {
		t.Errorf("postfix's bounces lack the gateway's 5.7.1 (DMARC) and 5.1.1 (unknown user):\n%s", l)
	}

	waitFor(t, "the mail in alice's INBOX", 60*time.Second, func() bool {
		return len(storetest.Mailbox(t, alice.Mailboxes(), store.RoleInbox)) == 1
	})
	got := string(storetest.Mailbox(t, alice.Mailboxes(), store.RoleInbox)[0].Raw)
	for _, want := range []string{
		"Authentication-Results: mx.gw.test; spf=pass smtp.mailfrom=sender.test;",
		"dkim=pass header.d=sender.test",
		"dmarc=pass header.from=sender.test",
		"Received: from mta.sender.test ([127.0.0.1])",
		"with ESMTPS",
		"Hello Alice, through the gateway.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("alice's mail lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasPrefix(got, "Authentication-Results:") {
		t.Errorf("the Authentication-Results field is not on top:\n%s", got)
	}
}
