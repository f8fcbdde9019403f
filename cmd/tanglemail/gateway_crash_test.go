package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/crashtest"
	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/gateway"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

var (
	gatewayMXLine    = regexp.MustCompile(`MX \(SMTP, STARTTLS\):\s+(\S+)`)
	gatewayClaimLine = regexp.MustCompile(`Claim API \(HTTP\):\s+http://(\S+)/`)
)

type childGateway struct {
	cmd       *exec.Cmd
	mx, claim string
}

// startChildGateway runs "tanglemail gateway" for gw.test as a child process on loopback, its lookups
// going to the test's DNS server.
func startChildGateway(t *testing.T, dir, bootstrap, dns string) *childGateway {
	t.Helper()
	cmd, out := crashtest.Start(t, []string{"TANGLEMAIL_TEST_RUN_MAIN=1"}, "gateway", "--domain", "gw.test", "--data-dir", dir,
		"--network", "tanglemail-dev", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--dht=false",
		"--api-listen", "127.0.0.1:0", "--smtp-listen", "127.0.0.1:0", "--imap-listen", "127.0.0.1:0",
		"--mx-listen", "127.0.0.1:0", "--claim-listen", "127.0.0.1:0", "--dns", dns, "--bootstrap", bootstrap, "--log-level", "error")
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var mx string
		sent := false
		for sc.Scan() {
			if m := gatewayMXLine.FindStringSubmatch(sc.Text()); m != nil {
				mx = m[1]
			}
			if m := gatewayClaimLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- [2]string{mx, m[1]}
				sent = true
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case a := <-found:
		return &childGateway{cmd: cmd, mx: a[0], claim: a[1]}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child gateway did not print its addresses within 30 s")
		return nil
	}
}

func (c *childGateway) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

// sendInbound delivers one Internet mail to the MX and reports whether it said 250.
func sendInbound(addr, msgID string) bool {
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return false
	}
	defer c.Close()
	raw := fmt.Sprintf("From: <bob@sender.test>\r\nTo: <alice@gw.test>\r\nSubject: crash test\r\nMessage-ID: <%s>\r\n\r\nmessage %s\r\n", msgID, msgID)
	if c.Hello("mta.sender.test") != nil {
		return false
	}
	return c.SendMail("bob@sender.test", []string{"alice@gw.test"}, strings.NewReader(raw)) == nil
}

// A gateway killed with SIGKILL at random moments while an Internet MTA delivers to it loses nothing it
// acknowledged: every mail that got 250 reaches alice's INBOX exactly once, once the gateway runs again.
func TestGatewaySIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs a gateway process repeatedly")
	}
	ctx := context.Background()
	dns := dnstest.Start(t, `sender.test. TXT "v=spf1 ip4:127.0.0.1 -all"`, `_dmarc.sender.test. TXT "v=DMARC1; p=none"`)
	alice, err := node.Start(ctx, node.DevnetConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	gwDir := t.TempDir()
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		tried   = map[string]bool{}
		counter int
	)
	rounds := 4
	for round := range rounds {
		child := startChildGateway(t, gwDir, alice.Network().Addrs()[0], dns.Addr)
		if round == 0 {
			claimOn(t, child.claim, alice.Identity())
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				counter++
				id := fmt.Sprintf("gwcrash-%d-%d@sender.test", round, counter)
				tried[id] = true
				mu.Unlock()
				if sendInbound(child.mx, id) {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}()
		time.Sleep(time.Duration(300+mrand.IntN(1200)) * time.Millisecond) // the random moment of the crash
		child.kill()
		close(stop)
		wg.Wait()
	}
	mu.Lock()
	nAcked := len(acked)
	mu.Unlock()
	if nAcked == 0 {
		t.Fatal("no message was acknowledged: the test exercised nothing")
	}
	t.Logf("%d mails attempted, %d acknowledged with 250 across %d SIGKILLs", len(tried), nAcked, rounds)
	child := startChildGateway(t, gwDir, alice.Network().Addrs()[0], dns.Addr)
	defer child.kill()
	inbox, err := alice.Mailboxes().MailboxByRole(ctx, store.RoleInbox)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	testwait.For(t, "every acknowledged mail in alice's INBOX", 3*time.Minute, func() bool {
		got = map[string]int{}
		l, err := alice.Mailboxes().List(ctx, inbox.ID, store.ListQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range l.Messages {
			raw, err := alice.Mailboxes().Raw(ctx, inbox.ID, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			p, err := mail.Parse(raw)
			if err != nil {
				t.Fatalf("alice filed an unparsable message: %v", err)
			}
			got[strings.Trim(p.MessageID, "<>")]++
		}
		for id := range acked {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	for id, n := range got {
		if n != 1 {
			t.Errorf("%s filed %d times", id, n)
		}
		if !tried[id] {
			t.Errorf("%s was never sent", id)
		}
	}
	t.Logf("all %d acknowledged mails delivered exactly once (%d delivered in all)", nAcked, len(got))
}

// claimOn claims alice@gw.test for id on the claim API at addr.
func claimOn(t *testing.T, addr string, id *identity.Identity) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/gateway")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`"address":"([^"]+)"`).FindStringSubmatch(body.String())
	if m == nil {
		t.Fatalf("GET /gateway: %s", body.String())
	}
	gw, err := parseTangleAddress(m[1])
	if err != nil {
		t.Fatal(err)
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	c, err := gateway.SignClaim(id, gateway.OpClaim, gw, "alice", "gw.test", time.Now(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post("http://"+addr+"/claim", "application/octet-stream", bytes.NewReader(c.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("claim: %s", resp.Status)
	}
}
