package browser_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testwait.For(t, what, d, cond)
}

// signIn opens the client at url and signs in with password through the form. ok says whether the
// sign-in should succeed (then it waits for the app and its event stream).
func (tb *tab) signIn(url, password string, ok bool) {
	tb.t.Helper()
	tb.run("open the sign-in page", 15*time.Second,
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(sel("login-password")),
		chromedp.Clear(sel("login-password")),
		chromedp.SendKeys(sel("login-password"), password),
		chromedp.Click(sel("login-submit")),
	)
	if ok {
		tb.run("wait for the app", 15*time.Second, chromedp.WaitVisible(sel("nav-chat")))
		tb.waitJS("the event stream", 10*time.Second, `document.body.dataset.events === 'open'`)
	}
}

// addContact adds a contact through the contacts page and waits for its row.
func (tb *tab) addContact(petname, address string) {
	tb.t.Helper()
	tb.run("add contact "+petname, 10*time.Second,
		chromedp.Click(sel("nav-contacts")),
		chromedp.WaitVisible(sel("contact-petname")),
		chromedp.SendKeys(sel("contact-petname"), petname),
		chromedp.SendKeys(sel("contact-address"), address),
		chromedp.Click(sel("contact-add")),
	)
	tb.waitJS("the contact row of "+petname, 10*time.Second, `document.querySelector('[data-test="contact-row"][data-petname=`+jsString(petname)+`]')`)
}

// openDirect starts (or opens) the 1:1 chat with peer from the chat page.
func (tb *tab) openDirect(peer string) {
	tb.t.Helper()
	tb.run("open the chat with "+peer, 10*time.Second,
		chromedp.Click(sel("nav-chat")),
		chromedp.WaitVisible(sel("conv-new-peer")),
		chromedp.SendKeys(sel("conv-new-peer"), peer),
		chromedp.Click(sel("conv-new-submit")),
		chromedp.WaitVisible(sel("chat-input")),
	)
	tb.waitJS("the chat title "+peer, 10*time.Second, `document.querySelector('[data-test="chat-title"]').textContent === `+jsString(peer))
}

// sendChat types text into the open conversation and presses Enter.
func (tb *tab) sendChat(text string) {
	tb.t.Helper()
	tb.run("send a chat message", 10*time.Second,
		chromedp.Click(sel("chat-input")),
		chromedp.SendKeys(sel("chat-input"), text+"\r"),
	)
	tb.waitJS("my message in the history", 10*time.Second, `[...document.querySelectorAll('[data-test="chat-message"][data-mine="1"] [data-test="chat-text"]')].some(e => e.textContent === `+jsString(text)+`)`)
}
