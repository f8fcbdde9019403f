package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/gateway"
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
	childProc
	mx, claim string
}

// startChildGateway runs "tanglemail gateway" for gw.test as a child process on loopback, its lookups
// going to the test's DNS server.
func startChildGateway(t *testing.T, dir, bootstrap, dns string) *childGateway {
	t.Helper()
	var mx, claim string
	c := startChildProc(t, "its addresses", func(line string) bool {
		if m := gatewayMXLine.FindStringSubmatch(line); m != nil {
			mx = m[1]
		}
		m := gatewayClaimLine.FindStringSubmatch(line)
		if m != nil {
			claim = m[1]
		}
		return m != nil
	}, "gateway", dir, bootstrap, "--domain", "gw.test", "--mx-listen", "127.0.0.1:0", "--claim-listen", "127.0.0.1:0",
		"--dns", dns)
	return &childGateway{childProc: c, mx: mx, claim: claim}
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
	claimed := false
	tried, acked := crashRounds(t, 4, "gwcrash", func() (func(id string) bool, func()) {
		child := startChildGateway(t, gwDir, alice.Network().Addrs()[0], dns.Addr)
		if !claimed {
			if _, err := gateway.Claim(ctx, nil, "http://"+child.claim, alice.Identity(), gateway.OpClaim, "alice", "gw.test"); err != nil {
				t.Fatal(err)
			}
			claimed = true
		}
		return func(id string) bool { return sendInbound(child.mx, id) }, child.kill
	})
	child := startChildGateway(t, gwDir, alice.Network().Addrs()[0], dns.Addr)
	defer child.kill()
	waitFiledOnce(t, alice.Mailboxes(), tried, acked)
}

// crashRounds runs rounds of: start a child process (start returns how to send one message with a given
// Message-ID and how to kill the child), send messages one after another from one goroutine, SIGKILL the
// child at a random moment. It returns the ids tried and the ids acknowledged with 250, and fails t if
// none was acknowledged (the test would then exercise nothing).
func crashRounds(t *testing.T, rounds int, prefix string, start func() (send func(id string) bool, kill func())) (tried, acked map[string]bool) {
	t.Helper()
	tried, acked = map[string]bool{}, map[string]bool{}
	var mu sync.Mutex
	counter := 0
	for round := range rounds {
		send, kill := start()
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
				id := fmt.Sprintf("%s-%d-%d@test", prefix, round, counter)
				tried[id] = true
				mu.Unlock()
				if send(id) {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}()
		time.Sleep(time.Duration(200+rand.IntN(1200)) * time.Millisecond) // the random moment of the crash
		kill()
		close(stop)
		wg.Wait()
	}
	if len(acked) == 0 {
		t.Fatal("no message was acknowledged: the test exercised nothing")
	}
	t.Logf("%d messages attempted, %d acknowledged with 250 across %d SIGKILLs", len(tried), len(acked), rounds)
	return tried, acked
}

// waitFiledOnce waits until every acknowledged message is in st's INBOX, then checks that each message
// there was filed exactly once and was tried.
func waitFiledOnce(t *testing.T, st *store.Store, tried, acked map[string]bool) {
	t.Helper()
	ctx := context.Background()
	inbox, err := st.MailboxByRole(ctx, store.RoleInbox)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	testwait.For(t, "every acknowledged message in INBOX", 3*time.Minute, func() bool {
		got = map[string]int{}
		l, err := st.List(ctx, inbox.ID, store.ListQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range l.Messages {
			raw, err := st.Raw(ctx, inbox.ID, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			p, err := mail.Parse(raw)
			if err != nil {
				t.Fatalf("an unparsable message was filed: %v", err)
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
			t.Errorf("%s was never submitted", id)
		}
	}
	t.Logf("all %d acknowledged messages delivered exactly once (%d delivered in all)", len(acked), len(got))
}
