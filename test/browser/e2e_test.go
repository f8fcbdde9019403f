package browser_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestE2EMarkShown: the message view says which mails the node decrypted with the user's OpenPGP key
// (api.MessageDetail's e2e, from the X-Tanglemail-E2E field), which Sent copies went encrypted (the
// $E2E keyword: e2e_signature "sent"), and says nothing for the others.
func TestE2EMarkShown(t *testing.T) {
	b := newBrowser(t)
	stub, srv := newStub(t, "stub-password", stubMe)
	d := b.newTab("desktop", 1280, 900)
	d.signIn(srv.URL, "stub-password", true)
	d.run("open mail", 5*time.Second, chromedp.Click(sel("nav-mail")), chromedp.WaitVisible(sel("folder-list")))

	stub.deliverE2EMail("bob@example.net", "Encrypted", "secret text", "good")
	d.waitJS("the encrypted mail", 5*time.Second, `[...document.querySelectorAll('[data-test="mail-row"]')].some(r => r.textContent.includes('Encrypted'))`)
	d.clickJS("open it", 5*time.Second, `[...document.querySelectorAll('[data-test="mail-row"]')].find(r => r.textContent.includes('Encrypted')).querySelector('a')`)
	d.waitJS("the mark", 5*time.Second, `(e => !e.hidden && e.textContent.includes('End-to-end encrypted with OpenPGP') && e.textContent.includes('signed by the sender'))(document.querySelector('[data-test="mail-e2e"]')) && document.querySelector('[data-test="mail-body"]').textContent === 'secret text'`)

	// A Sent copy the node encrypted for its Internet recipients ($E2E: e2e_signature "sent").
	stub.deliverE2EMail(stubMe, "Went encrypted", "sent text", "sent")
	d.waitJS("the sent mail", 5*time.Second, `[...document.querySelectorAll('[data-test="mail-row"]')].some(r => r.textContent.includes('Went encrypted'))`)
	d.clickJS("open it", 5*time.Second, `[...document.querySelectorAll('[data-test="mail-row"]')].find(r => r.textContent.includes('Went encrypted')).querySelector('a')`)
	d.waitJS("the sent mark", 5*time.Second, `(e => !e.hidden && e.textContent.includes('Sent end-to-end encrypted with OpenPGP'))(document.querySelector('[data-test="mail-e2e"]')) && document.querySelector('[data-test="mail-body"]').textContent === 'sent text'`)

	stub.deliverMail(stubBob, "Plain", "plain text", "")
	d.waitJS("the plain mail", 5*time.Second, `[...document.querySelectorAll('[data-test="mail-row"]')].some(r => r.textContent.includes('Plain'))`)
	d.clickJS("open it", 5*time.Second, `[...document.querySelectorAll('[data-test="mail-row"]')].find(r => r.textContent.includes('Plain')).querySelector('a')`)
	d.waitJS("no mark", 5*time.Second, `document.querySelector('[data-test="mail-body"]').textContent === 'plain text' && document.querySelector('[data-test="mail-e2e"]').hidden`)

	for _, e := range d.consoleLog() {
		if (e.Type == "error" || e.Type == "exception") && e.Source != "network" {
			t.Errorf("logged %s", e)
		}
	}
}
