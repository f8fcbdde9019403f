package browser_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tanglemail/tanglemail/internal/invite"
	"github.com/tanglemail/tanglemail/internal/node"
)

// TestInviteFlow: two fresh nodes that know nothing of each other (loopback, mDNS and DHT off, no
// bootstrap). Alice's page says what an invite reveals before it shows it; bob pastes it in his page
// and joins: the nodes peer and alice is bob's contact.
func TestInviteFlow(t *testing.T) {
	var nodes []*testNode
	for _, name := range []string{"alice", "bob"} {
		n, err := node.Start(context.Background(), node.DevnetConfig(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		tn := &testNode{Node: n, name: name, addr: n.Identity().Address().Mail()}
		tn.url = clientURL(t, tn)
		nodes = append(nodes, tn)
	}
	alice, bob := nodes[0], nodes[1]

	b := newBrowser(t)
	ta := b.newTab("alice", 1280, 900)
	tb := b.newTab("bob", 390, 844)
	ta.signIn(alice.url, alice.Password(), true)
	tb.signIn(bob.url, bob.Password(), true)

	tb.run("bob's status page", 10*time.Second, chromedp.Click(sel("nav-status")), chromedp.WaitVisible(sel("peers-empty")))
	if txt := eval[string](tb, `document.querySelector('[data-test="peers-empty"]').textContent`); !strings.Contains(txt, "invite") {
		t.Errorf("no-peers hint: %q", txt)
	}

	ta.run("alice asks for her invite", 10*time.Second,
		chromedp.Click(sel("nav-contacts")),
		chromedp.WaitVisible(sel("invite-show")),
		chromedp.Click(sel("invite-show")),
		chromedp.WaitVisible(sel("invite-reveals")),
	)
	if shown := eval[bool](ta, `!document.querySelector('[data-test="invite-out"]').hidden`); shown {
		t.Fatal("the invite is shown before what it reveals")
	}
	if txt := eval[string](ta, `document.querySelector('[data-test="invite-reveals"]').textContent`); !strings.Contains(txt, "network addresses") || !strings.Contains(txt, "127.0.0.1") {
		t.Errorf("reveals: %q", txt)
	}
	ta.run("alice shows it", 10*time.Second,
		chromedp.SendKeys(sel("invite-name"), "alice"),
		chromedp.Click(sel("invite-make")),
		chromedp.WaitVisible(sel("invite-text")),
	)
	ta.waitJS("the invite's text and QR code", 10*time.Second,
		`document.querySelector('[data-test="invite-text"]').value.startsWith('tanglemail:invite?') && document.querySelector('[data-test="invite-qr"]').naturalWidth > 0`)
	text := eval[string](ta, `document.querySelector('[data-test="invite-text"]').value`)
	inv, err := invite.Parse(text)
	if err != nil || inv.Name != "alice" || inv.Address.Mail() != alice.addr {
		t.Fatalf("invite %q: %+v, %v", text, inv, err)
	}

	tb.run("bob pastes it", 10*time.Second,
		chromedp.Click(sel("nav-contacts")),
		chromedp.WaitVisible(sel("join-invite")),
		chromedp.SetValue(sel("join-invite"), text),
		chromedp.Click(sel("join-submit")),
	)
	tb.waitJS("bob joined", 30*time.Second, `document.querySelector('[data-test="join-result"]').textContent.startsWith('Joined')`)
	tb.waitJS("alice in bob's contacts", 10*time.Second, `document.querySelector('[data-test="contact-row"][data-petname="alice"]')?.dataset.address === `+jsString(alice.addr))
	waitFor(t, "alice and bob peered", 15*time.Second, func() bool {
		return alice.Network().PeerCount() == 1 && bob.Network().PeerCount() == 1
	})
}
