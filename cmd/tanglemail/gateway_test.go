package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// "tanglemail gateway" runs a node with the gateway and prints the DNS records; "gateway claim" claims
// and revokes an address with another data directory's identity.
func TestGatewayCommand(t *testing.T) {
	gwDir, userDir := t.TempDir(), t.TempDir()
	out := &testwait.Buffer{}
	stopc := make(chan struct{})
	env := &cmdEnv{stdout: out, stderr: out, getenv: func(string) string { return "" }, stop: stopc}
	done := make(chan int, 1)
	go func() {
		done <- run(env, []string{"gateway", "--domain", "gw.test", "--data-dir", gwDir, "--network", "tanglemail-dev",
			"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--dht=false", "--api-listen", "127.0.0.1:0",
			"--smtp-listen", "127.0.0.1:0", "--imap-listen", "127.0.0.1:0", "--mx-listen", "127.0.0.1:0",
			"--claim-listen", "127.0.0.1:0", "--public-ip", "192.0.2.7"})
	}()
	defer func() {
		close(stopc)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("gateway did not stop within 20 s")
		}
	}()
	testwait.For(t, "the gateway's DNS records", 30*time.Second, func() bool {
		select {
		case code := <-done:
			t.Fatalf("gateway exited with %d:\n%s", code, out.String())
		default:
		}
		return strings.Contains(out.String(), "_dmarc.gw.test.")
	})
	text := out.String()
	for _, want := range []string{
		"mx.gw.test. 3600 IN A 192.0.2.7",
		"gw.test. 3600 IN MX 10 mx.gw.test.",
		`gw.test. 3600 IN TXT "v=spf1 mx -all"`,
		`tanglemail._domainkey.gw.test. 3600 IN TXT "v=DKIM1; k=rsa; p=`,
		`_dmarc.gw.test. 3600 IN TXT "v=DMARC1; p=reject`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("banner lacks %q:\n%s", want, text)
		}
	}
	m := regexp.MustCompile(`Claim API \(HTTP\):\s+(http://\S+)/`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no claim API address:\n%s", text)
	}
	url := m[1]
	if code, _, errs := runCLI(t, nil, "init", "--data-dir", userDir); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	code, stdout, errs := runCLI(t, nil, "gateway", "claim", "Alice@gw.test", "--gateway", url, "--data-dir", userDir)
	if code != 0 || !strings.Contains(stdout, "Claimed: mail to alice@gw.test is delivered to") {
		t.Fatalf("claim: exit %d\n%s%s", code, stdout, errs)
	}
	if a, ok, err := node.LoadInternetAddress(userDir); !ok || err != nil || a != "alice@gw.test" {
		t.Fatalf("claimed address recorded: %q %v %v", a, ok, err)
	}
	code, _, errs = runCLI(t, nil, "gateway", "claim", "postmaster@gw.test", "--gateway", url, "--data-dir", userDir)
	if code != 1 || !strings.Contains(errs, "403") || !strings.Contains(errs, "RFC 2142") {
		t.Fatalf("claiming postmaster: exit %d: %s", code, errs)
	}
	code, _, errs = runCLI(t, nil, "gateway", "claim", "bob@gw.test", "--gateway", url, "--data-dir", userDir,
		"--gateway-address", "tm1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq@tangle")
	if code != 2 && code != 1 {
		t.Fatalf("a pinned address that does not parse or match: exit %d: %s", code, errs)
	}
	code, stdout, errs = runCLI(t, nil, "gateway", "claim", "alice@gw.test", "--gateway", url, "--data-dir", userDir, "--revoke")
	if code != 0 || !strings.Contains(stdout, "Revoked: alice@gw.test") {
		t.Fatalf("revoke: exit %d\n%s%s", code, stdout, errs)
	}
	if _, ok, _ := node.LoadInternetAddress(userDir); ok {
		t.Fatal("the claimed address is still recorded after the revoke")
	}
	if code, _, errs := runCLI(t, nil, "gateway", "--data-dir", t.TempDir()); code != 2 || !strings.Contains(errs, "--domain is required") {
		t.Fatalf("without --domain: exit %d: %s", code, errs)
	}
}
