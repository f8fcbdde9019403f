package browser_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// deliverWithin bounds each step that crosses the network: sealing, DevNet proof of work, gossip,
// trial-open, filing and the receipt back.
const deliverWithin = 30 * time.Second

// TestChatFlow is the chat and mail flow of three people, each on their own node, through the web
// client: alice and bob in two browser contexts (separate cookie jars), carol in a third, phone-sized.
func TestChatFlow(t *testing.T) {
	nodes := startNodes(t, "alice", "bob", "carol")
	alice, bob, carol := nodes[0], nodes[1], nodes[2]

	b := newBrowser(t)
	ta := b.newTab("alice", 1280, 900)
	tb := b.newTab("bob", 1280, 900)
	tc := b.newTab("carol", 390, 844)
	ta.signIn(alice.url, alice.Password(), true)
	tb.signIn(bob.url, bob.Password(), true)
	tc.signIn(carol.url, carol.Password(), true)
	for _, x := range []*tab{ta, tb, tc} {
		// Cleared by a reload: every update below must arrive live.
		eval[bool](x, `(window.__noReload = true)`)
	}

	// Contacts by petname.
	ta.addContact("bob", bob.addr)
	ta.addContact("carol", carol.addr)
	tb.addContact("alice", alice.addr)
	tc.addContact("alice", alice.addr)

	// A 1:1 chat: alice writes, bob's page shows it live, alice sees delivered, then read once bob
	// opens it.
	tb.run("bob opens the chat list", 10*time.Second, chromedp.Click(sel("nav-chat")), chromedp.WaitVisible(sel("conv-new-peer")))
	ta.openDirect("bob")
	ta.sendChat("Hello bob, it is alice")
	ta.waitJS("alice's message delivered", deliverWithin, lastMineStatusIs("Hello bob, it is alice", "delivered", "read"))
	tb.waitJS("the conversation with alice in bob's list, unread", deliverWithin,
		`[...document.querySelectorAll('[data-test="conv-row"]')].some(r => r.querySelector('[data-test="conv-name"]').textContent === 'alice' && r.querySelector('[data-test="unread-count"]')?.textContent === '1' && r.textContent.includes('Hello bob, it is alice'))`)
	tb.clickJS("bob opens it", 10*time.Second, convRowNamed("alice"))
	tb.run("the chat at bob", 10*time.Second, chromedp.WaitVisible(sel("chat-input")))
	tb.waitJS("alice's message in bob's history", 10*time.Second, hasTheirMessage("Hello bob, it is alice", ""))
	ta.waitJS("alice's message read", deliverWithin, lastMineStatusIs("Hello bob, it is alice", "read"))
	if tick := eval[string](ta, `[...document.querySelectorAll('[data-test="chat-message"][data-mine="1"]')].pop().querySelector('[data-test="chat-status"]').textContent`); tick != "✓✓" {
		t.Errorf("alice's read tick is %q, want ✓✓", tick)
	}

	// bob answers; alice sees him typing first, then the answer, live.
	tb.run("bob types", 10*time.Second, chromedp.Click(sel("chat-input")), chromedp.SendKeys(sel("chat-input"), "Hi alice"))
	ta.waitJS("bob is typing", deliverWithin, `document.querySelector('[data-test="typing"]').textContent === 'bob is typing…'`)
	tb.run("bob sends", 10*time.Second, chromedp.SendKeys(sel("chat-input"), ", bob here\r"))
	tb.waitJS("bob's message in his history", 10*time.Second, `[...document.querySelectorAll('[data-test="chat-message"][data-mine="1"] [data-test="chat-text"]')].some(e => e.textContent === 'Hi alice, bob here')`)
	ta.waitJS("bob's answer at alice", deliverWithin, hasTheirMessage("Hi alice, bob here", ""))
	tb.waitJS("bob's answer read by alice", deliverWithin, lastMineStatusIs("Hi alice, bob here", "read"))

	// A group: alice makes "Trip" with bob and carol and writes in it; bob's page and carol's get it.
	ta.run("alice creates a group", 10*time.Second,
		chromedp.Click(sel("group-new-open")),
		chromedp.WaitVisible(sel("group-name")),
		chromedp.SendKeys(sel("group-name"), "Trip"),
		chromedp.SendKeys(sel("group-members"), "bob, carol"),
		chromedp.Click(sel("group-create")),
	)
	ta.waitJS("the group open at alice", 10*time.Second, `document.querySelector('[data-test="chat-title"]').textContent === 'Trip'`)
	ta.sendChat("Group hello from alice")
	ta.waitJS("the group message delivered to both", deliverWithin, lastMineStatusIs("Group hello from alice", "delivered", "read"))
	tb.waitJS("the group in bob's list", deliverWithin, `[...document.querySelectorAll('[data-test="conv-row"]')].some(r => r.querySelector('[data-test="conv-name"]').textContent === 'Trip' && r.textContent.includes('Group hello from alice'))`)
	tb.clickJS("bob opens the group", 10*time.Second, convRowNamed("Trip"))
	tb.waitJS("the group open at bob", 10*time.Second, `document.querySelector('[data-test="chat-title"]').textContent === 'Trip'`)
	tb.waitJS("alice's group message at bob, from alice", 10*time.Second, hasTheirMessage("Group hello from alice", "alice"))
	tb.run("bob opens the members", 10*time.Second, chromedp.Click(sel("group-panel-open")), chromedp.WaitVisible(sel("group-member-list")))
	tb.waitJS("three members at bob", 10*time.Second, `document.querySelectorAll('[data-test="group-member"]').length === 3`)
	tc.run("carol goes to chat", 10*time.Second, chromedp.Click(sel("nav-chat")), chromedp.WaitVisible(sel("conv-list")))
	tc.waitJS("the group in carol's list", deliverWithin, `[...document.querySelectorAll('[data-test="conv-row"]')].some(r => r.querySelector('[data-test="conv-name"]').textContent === 'Trip')`)
	tc.clickJS("carol opens the group", 10*time.Second, convRowNamed("Trip"))
	tc.waitJS("the group open at carol", 10*time.Second, `document.querySelector('[data-test="chat-title"]').textContent === 'Trip'`)
	tc.waitJS("alice's group message at carol", 10*time.Second, hasTheirMessage("Group hello from alice", "alice"))
	ta.waitJS("the group message read by both", deliverWithin, lastMineStatusIs("Group hello from alice", "read"))

	// Mail: alice writes to bob through the compose form (autocomplete), watches the proof of work
	// finish; bob's INBOX shows it live, and he reads it.
	tb.run("bob opens his mail", 10*time.Second, chromedp.Click(sel("nav-mail")), chromedp.WaitVisible(sel("folder-list")))
	ta.run("alice composes", 10*time.Second,
		chromedp.Click(sel("nav-mail")),
		chromedp.WaitVisible(sel("compose-open")),
		chromedp.Click(sel("compose-open")),
		chromedp.WaitVisible(sel("compose-to")),
		chromedp.SendKeys(sel("compose-to"), "bo"),
		chromedp.WaitVisible(sel("compose-suggestion")),
		chromedp.Click(sel("compose-suggestion")),
		chromedp.SendKeys(sel("compose-subject"), "Train times"),
		chromedp.SendKeys(sel("compose-text"), "The train leaves at 9:14 from platform 2."),
		chromedp.Click(sel("compose-send")),
		chromedp.WaitVisible(sel("pow-progress")),
	)
	ta.waitJS("the proof of work to finish", deliverWithin, `document.querySelector('[data-test="pow-progress"]').dataset.state === 'done'`)
	tb.waitJS("the mail in bob's INBOX, unread, from alice", deliverWithin,
		`[...document.querySelectorAll('[data-test="mail-row"][data-seen="0"]')].some(r => r.querySelector('[data-test="mail-row-subject"]').textContent.includes('Train times') && r.querySelector('[data-test="mail-row-from"]').textContent === 'alice')`)
	tb.clickJS("bob opens the mail", 10*time.Second, `document.querySelector('[data-test="mail-row"] a')`)
	tb.run("bob reads it", 10*time.Second, chromedp.WaitVisible(sel("mail-body")))
	tb.waitJS("the mail's text", 10*time.Second, `document.querySelector('[data-test="mail-subject"]').textContent === 'Train times' && document.querySelector('[data-test="mail-body"]').textContent.includes('The train leaves at 9:14 from platform 2.') && document.querySelector('[data-test="mail-from"]').textContent === 'alice'`)
	tb.waitJS("the mail marked read", 10*time.Second, `document.querySelector('[data-test="mail-row"]').dataset.seen === '1'`)

	for _, x := range []*tab{ta, tb, tc} {
		if !eval[bool](x, `window.__noReload === true`) {
			t.Errorf("%s's page reloaded: updates must arrive live", x.name)
		}
		for _, e := range x.consoleLog() {
			if (e.Type == "error" || e.Type == "exception") && !(e.Source == "network" && strings.Contains(e.Text, "401") && strings.HasSuffix(e.URL, "/api/me")) {
				t.Errorf("%s logged %s", x.name, e)
			}
		}
	}
}

// convRowNamed is a JS expression: the link of the conversation row whose name is name, or undefined.
func convRowNamed(name string) string {
	return `[...document.querySelectorAll('[data-test="conv-row"]')].find(r => r.querySelector('[data-test="conv-name"]').textContent === ` + jsString(name) + `)?.querySelector('a')`
}

// lastMineStatusIs is a JS predicate: the user's own message with this text has one of the statuses.
func lastMineStatusIs(text string, statuses ...string) string {
	list := "["
	for i, s := range statuses {
		if i > 0 {
			list += ","
		}
		list += jsString(s)
	}
	list += "]"
	return `[...document.querySelectorAll('[data-test="chat-message"][data-mine="1"]')].some(m => m.querySelector('[data-test="chat-text"]').textContent === ` + jsString(text) + ` && ` + list + `.includes(m.querySelector('[data-test="chat-status"]')?.dataset.status))`
}

// hasTheirMessage is a JS predicate: a message of someone else with this text (and, if from is not
// empty, shown as from them) is in the open conversation.
func hasTheirMessage(text, from string) string {
	cond := ``
	if from != "" {
		cond = ` && m.querySelector('[data-test="chat-from"]')?.textContent === ` + jsString(from)
	}
	return `[...document.querySelectorAll('[data-test="chat-message"][data-mine="0"]')].some(m => m.querySelector('[data-test="chat-text"]').textContent === ` + jsString(text) + cond + `)`
}
