package browser_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	stubMe  = "tm1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqme@tangle"
	stubBob = "tm1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbob@tangle"
)

// TestClientAgainstStub drives the web client against the in-memory stub API (stub_test.go): the client
// alone, without a network, under the node's CSP. It covers sign-in (a wrong password shows the API's
// error), contacts, a 1:1 chat with live typing, incoming messages, read marks and delivery ticks, mail
// with the sandboxed HTML view, compose with contact autocomplete and the proof-of-work bar, and the
// phone layout; the page must log no error (a CSP violation is one).
func TestClientAgainstStub(t *testing.T) {
	b := newBrowser(t)
	stub, srv := newStub(t, "stub-password", stubMe)
	d := b.newTab("desktop", 1280, 900)
	d.signIn(srv.URL, "wrong-password", false)
	d.waitJS("the error banner", 5*time.Second, `document.querySelector('[data-test="error-banner"]:not([hidden])') && document.querySelector('[data-test="error-text"]').textContent.includes('wrong password')`)
	d.signIn(srv.URL, "stub-password", true)

	// Contacts: add bob; a second bob is refused with the API's text.
	d.addContact("bob", stubBob)
	d.run("add bob again", 5*time.Second,
		chromedp.SendKeys(sel("contact-petname"), "bob"),
		chromedp.SendKeys(sel("contact-address"), stubBob),
		chromedp.Click(sel("contact-add")),
	)
	d.waitJS("the 409 in the banner", 5*time.Second, `document.querySelector('[data-test="error-text"]').textContent.includes('taken')`)
	d.run("dismiss the banner", 5*time.Second, chromedp.Click(sel("error-close")), chromedp.WaitNotVisible(sel("error-banner")))
	d.waitJS("my QR code", 5*time.Second, `document.querySelector('[data-test="me-qr"]').complete && document.querySelector('[data-test="me-qr"]').naturalWidth > 0`)

	// Chat with bob: send, watch the ticks, see bob typing and answering live.
	d.openDirect("bob")
	d.sendChat("hello bob")
	d.waitJS("the delivered tick", 5*time.Second, `[...document.querySelectorAll('[data-test="chat-message"][data-mine="1"]')].some(m => m.textContent.includes('hello bob') && m.querySelector('[data-test="chat-status"]').dataset.status === 'delivered')`)
	conv := stub.conversationWith(stubBob)
	stub.typing(conv, stubBob)
	d.waitJS("bob is typing", 5*time.Second, `document.querySelector('[data-test="typing"]').textContent === 'bob is typing…'`)
	stub.receive(conv, stubBob, "hi alice <b>not bold</b>")
	d.waitJS("bob's answer", 5*time.Second, `[...document.querySelectorAll('[data-test="chat-message"][data-mine="0"]')].some(m => m.querySelector('[data-test="chat-text"]').textContent === 'hi alice <b>not bold</b>')`)
	d.waitJS("the typing notice to end with the message", 5*time.Second, `document.querySelector('[data-test="typing"]').hidden`)
	waitFor(t, "the conversation marked read", 5*time.Second, func() bool { return stub.unread(conv) == 0 })

	// Mail: bob's message appears live in INBOX with its unread count; its HTML is framed, sandboxed.
	d.run("open mail", 5*time.Second, chromedp.Click(sel("nav-mail")), chromedp.WaitVisible(sel("folder-list")))
	stub.deliverMail(stubBob, "Lunch?", "Plain text body", `<p>Formatted <b>body</b></p>`)
	d.waitJS("the new mail", 5*time.Second, `[...document.querySelectorAll('[data-test="mail-row"]')].some(r => r.textContent.includes('Lunch?') && r.textContent.includes('bob'))`)
	d.waitJS("the unseen count", 5*time.Second, `document.querySelector('[data-test="folder-row"][data-role="inbox"] [data-test="unread-count"]')?.textContent === '1'`)
	d.clickJS("open the mail", 5*time.Second, `document.querySelector('[data-test="mail-row"] a')`)
	d.run("read it", 5*time.Second, chromedp.WaitVisible(sel("mail-body")))
	d.waitJS("the body", 5*time.Second, `document.querySelector('[data-test="mail-body"]').textContent === 'Plain text body' && document.querySelector('[data-test="mail-from"]').textContent === 'bob'`)
	d.waitJS("the unseen count to drop", 5*time.Second, `!document.querySelector('[data-test="folder-row"][data-role="inbox"] [data-test="unread-count"]')`)
	d.run("show formatted", 5*time.Second, chromedp.Click(sel("mail-show-html")), chromedp.WaitVisible(sel("mail-html-frame")))
	if got := eval[string](d, `document.querySelector('[data-test="mail-html-frame"]').getAttribute('sandbox')`); got != "allow-popups allow-popups-to-escape-sandbox" {
		t.Errorf("mail frame sandbox=%q, want only popups (no scripts, no same origin)", got)
	}

	// Compose to bob via autocomplete; the proof-of-work bar runs to done.
	d.run("compose", 5*time.Second,
		chromedp.Click(sel("compose-open")),
		chromedp.WaitVisible(sel("compose-to")),
		chromedp.SendKeys(sel("compose-to"), "bo"),
		chromedp.WaitVisible(sel("compose-suggestion")),
		chromedp.Click(sel("compose-suggestion")),
		chromedp.SendKeys(sel("compose-subject"), "Re: Lunch?"),
		chromedp.SendKeys(sel("compose-text"), "Yes."),
	)
	if to := eval[string](d, `document.querySelector('[data-test="compose-to"]').value`); strings.TrimSpace(to) != "bob," {
		t.Errorf("compose-to after picking the suggestion = %q, want \"bob, \"", to)
	}
	d.run("send", 5*time.Second, chromedp.Click(sel("compose-send")), chromedp.WaitVisible(sel("pow-progress")))
	d.waitJS("the proof of work to finish", 10*time.Second, `document.querySelector('[data-test="pow-progress"]').dataset.state === 'done'`)

	// Status: the storage subscription's usage and paid period.
	d.run("open status", 5*time.Second, chromedp.Click(sel("nav-status")), chromedp.WaitVisible(sel("status-storage")))
	d.waitJS("the storage subscription", 5*time.Second, `(t => t.includes('active') && t.includes('3.0 MiB of 64 MiB used (4 %)') && t.includes('paid until ') && t.includes('2026'))(document.querySelector('[data-test="status-storage"]').textContent)`)

	d.waitJS("the wallet's balance", 5*time.Second, `(t => t.includes('12.5 IOTA') && t.includes('0x123456') && t.includes('2026'))(document.querySelector('[data-test="status-wallet"]').textContent)`)

	// Phone-sized: one column, the nav bar at the bottom, tap targets of at least 40px.
	p := b.newTab("phone", 390, 844)
	p.signIn(srv.URL, "stub-password", true)
	p.waitJS("mail, the first view", 5*time.Second, `document.body.dataset.view === 'mail'`)
	p.run("open the chats", 5*time.Second, chromedp.Click(sel("nav-chat")))
	p.waitJS("the conversation list", 5*time.Second, `document.querySelector('[data-test="conv-row"]')`)
	if top := eval[float64](p, `document.querySelector('[data-test="nav-chat"]').getBoundingClientRect().top`); top < 700 {
		t.Errorf("phone: nav bar at y=%v, want at the bottom", top)
	}
	small := eval[[]string](p, `[...document.querySelectorAll('button, a[href], input, select, textarea, summary')].filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && (r.height < 40 || r.width < 40) && !e.classList.contains('skip'); }).map(e => (e.dataset.test || e.tagName) + ' ' + Math.round(e.getBoundingClientRect().width) + 'x' + Math.round(e.getBoundingClientRect().height))`)
	if len(small) > 0 {
		t.Errorf("phone: tap targets smaller than 40px: %v", small)
	}
	p.clickJS("open the chat", 5*time.Second, `document.querySelector('[data-test="conv-row"] a')`)
	p.run("the open chat", 5*time.Second, chromedp.WaitVisible(sel("chat-input")))
	if v := eval[bool](p, `getComputedStyle(document.querySelector('[data-test="conv-list"]')).display !== 'none' && document.querySelector('[data-test="conv-list"]').getBoundingClientRect().width > 0`); v {
		t.Error("phone: the conversation list is still shown beside the open chat")
	}
	p.run("back", 5*time.Second, chromedp.Click(sel("conv-back")), chromedp.WaitVisible(sel("conv-list")))

	for _, tb := range []*tab{d, p} {
		for _, e := range tb.consoleLog() {
			if (e.Type == "error" || e.Type == "exception") && e.Source != "network" { // 4xx answers are expected here
				t.Errorf("%s logged %s", tb.name, e)
			}
		}
	}
}
