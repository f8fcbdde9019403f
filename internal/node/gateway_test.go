package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/gateway"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// gatewayConfig is a devnet node running the gateway for gw.test on loopback, with DNS from dns.
func gatewayConfig(t testing.TB, dns *dnstest.Server) Config {
	cfg := testConfig(t, t.TempDir())
	cfg.Gateway = GatewayConfig{Enabled: true, Domains: []string{"gw.test"}, MXListen: "127.0.0.1:0",
		ClaimListen: "127.0.0.1:0", Policy: gateway.Policy{Open: true}, Resolver: dns.Resolver()}
	return cfg
}

// claimAddress claims local@gw.test for id on the gateway node gw through its claim API.
func claimAddress(t testing.TB, gw *Node, id *identity.Identity, local string) {
	t.Helper()
	if _, err := gateway.Claim(context.Background(), nil, "http://"+gw.GatewayClaimAddr(), id, gateway.OpClaim, local, "gw.test"); err != nil {
		t.Fatal(err)
	}
}

// sendMX delivers msg to the MX at addr as an Internet MTA would: STARTTLS, then one transaction.
func sendMX(t testing.TB, addr, from string, to []string, msg []byte) error {
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("mta.sender.test"); err != nil {
		return err
	}
	if err := c.SendMail(from, to, bytes.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// Mail from the Internet to alice@gw.test reaches alice's node's INBOX through the gateway node and the
// Tangle, with the gateway's Authentication-Results; the gateway gets alice's receipt; nothing in the
// gateway's data directory is readable.
func TestGatewayInbound(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	dns := dnstest.Start(t,
		`sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.sender.test. TXT "v=DMARC1; p=reject"`,
		`sel._domainkey.sender.test. TXT "v=DKIM1; k=ed25519; p=`+base64.StdEncoding.EncodeToString(pub)+`"`,
	)
	gcfg := gatewayConfig(t, dns)
	gw := startNode(t, gcfg)
	acfg := testConfig(t, t.TempDir())
	acfg.Bootstrap = gw.Network().Addrs()
	alice := startNode(t, acfg)
	waitFor(t, "peering", 10*time.Second, func() bool { return gw.Network().PeerCount() == 1 })
	claimAddress(t, gw, alice.Identity(), "alice")

	marker := "inbound-marker-9b2e41"
	raw := "From: Bob <bob@sender.test>\r\nTo: alice@gw.test\r\nSubject: from the Internet\r\n" +
		"Message-ID: <" + marker + "@sender.test>\r\n\r\nHello Alice, " + marker + "\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(raw), &dkim.SignOptions{Domain: "sender.test", Selector: "sel", Signer: key}); err != nil {
		t.Fatal(err)
	}
	before := gw.frontActivity().last.Load()
	if err := sendMX(t, gw.GatewayMXAddr(), "bob@sender.test", []string{"alice@gw.test"}, signed.Bytes()); err != nil {
		t.Fatal(err)
	}
	// An MX session is front-door activity: the proof of work sealing the mail gives way to it.
	if gw.activity.last.Load() <= before {
		t.Fatal("the MX session did not count as front-door activity")
	}
	waitFor(t, "the mail in alice's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, alice, store.RoleInbox)) == 1
	})
	got := string(inboxMessages(t, alice, store.RoleInbox)[0])
	if !strings.HasPrefix(got, "Authentication-Results: mx.gw.test; spf=pass smtp.mailfrom=sender.test; dkim=pass header.d=sender.test") ||
		!strings.Contains(got, "dmarc=pass header.from=sender.test") || !strings.HasSuffix(got, signed.String()) {
		t.Fatalf("alice got:\n%s", got)
	}
	waitFor(t, "alice's receipt at the gateway", 60*time.Second, func() bool {
		items, err := gw.Mailboxes().OutboxItems(context.Background())
		return err == nil && len(items) == 1 && items[0].Rcpts[0].State == store.RcptDelivered
	})
	if st := gw.Gateway().Stats(); st.Accepted != 1 {
		t.Fatalf("gateway stats %+v", st)
	}
	if recs := gw.GatewayDNSRecords("192.0.2.1"); len(recs) != 5 || !strings.Contains(strings.Join(recs, "\n"), "tanglemail._domainkey.gw.test.") {
		t.Fatalf("DNS records %q", recs)
	}
	dir := gcfg.DataDir
	gw.Close()
	noneInFiles(t, dir, marker, "Hello Alice", "from the Internet", "bob@sender.test")
}

// noneInFiles fails t if any file under dir contains one of the strings.
func noneInFiles(t *testing.T, dir string, strs ...string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, s := range strs {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains %q", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGatewayInboundLarge: Internet mail with a 2 MiB attachment to alice@gw.test reaches alice's
// INBOX whole: the gateway seals it as blob mail, and alice's node, for which the gateway of her claim
// is her relay gateway (recorded by "gateway claim"), fetches it from the gateway node without
// asking (it is not in her contacts, and she has no relay or storage provider).
func TestGatewayInboundLarge(t *testing.T) {
	dns := dnstest.Start(t, `sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`)
	gw := startNode(t, gatewayConfig(t, dns))
	acfg := testConfig(t, t.TempDir())
	acfg.Bootstrap = gw.Network().Addrs()
	acfg.RelayGateway = gw.Identity().Address()
	logs := &testwait.Buffer{}
	acfg.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	alice := startNode(t, acfg)
	defer func() {
		if t.Failed() {
			for _, m := range inboxMessages(t, alice, store.RoleInbox) {
				t.Logf("INBOX: %.600s", m)
			}
			t.Logf("alice's logs:\n%s", logs.String())
		}
	}()
	waitFor(t, "peering", 10*time.Second, func() bool { return gw.Network().PeerCount() == 1 })
	claimAddress(t, gw, alice.Identity(), "alice")

	var att strings.Builder
	for i := 0; att.Len() < 2<<20; i++ {
		fmt.Fprintf(&att, "inbound large line %07d of the attachment ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n", i)
	}
	raw := "From: Bob <bob@sender.test>\r\nTo: alice@gw.test\r\nSubject: a large one\r\n" +
		"Message-ID: <inbound-large@sender.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello Alice\r\n" +
		"--b\r\nContent-Type: text/plain; name=\"big.txt\"\r\nContent-Disposition: attachment\r\n\r\n" +
		att.String() + "--b--\r\n"
	if err := sendMX(t, gw.GatewayMXAddr(), "bob@sender.test", []string{"alice@gw.test"}, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the large mail in alice's INBOX", 60*time.Second, func() bool {
		for _, m := range inboxMessages(t, alice, store.RoleInbox) {
			if bytes.HasSuffix(m, []byte(raw)) {
				return true
			}
		}
		return false
	})
	// One blob mail envelope, not 64 chunks: the gateway published one block for it.
	items, err := gw.Mailboxes().OutboxItems(context.Background())
	if err != nil || len(items) != 1 || len(items[0].Rcpts[0].BlockIDs) != 1 {
		t.Fatalf("gateway outbox: %v, %+v", err, items)
	}
	// The gateway keeps the blob (it serves it until the TTL) but cannot read it, nor can anyone who
	// reads its files.
	dir := gw.cfg.DataDir
	gw.Close()
	noneInFiles(t, dir, "inbound large line", "a large one", "bob@sender.test")
}
