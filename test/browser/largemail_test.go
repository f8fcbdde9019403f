package browser_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const stubCarol = "tm1cccccccccccccccccccccccccccccccccccccccccccccccccccccccccarol@tangle"

// TestLargeMailAcceptAgainstStub: a stranger's large mail waits for consent. Above the INBOX listing
// the user sees who sent it, the subject and the size, with a button that accepts it (POST
// /api/blobs/{key}/accept); the row then shows the download's progress, and goes once the mail is
// filed.
func TestLargeMailAcceptAgainstStub(t *testing.T) {
	b := newBrowser(t)
	stub, srv := newStub(t, "stub-password", stubMe)
	d := b.newTab("desktop", 1280, 900)
	d.signIn(srv.URL, "stub-password", true)
	d.run("open mail", 5*time.Second, chromedp.Click(sel("nav-mail")), chromedp.WaitVisible(sel("folder-list")))
	key := stub.offerBlob(stubCarol, "holiday photos", 3<<20)
	d.waitJS("the offer above the INBOX", 5*time.Second, `(r => r && r.dataset.state === 'waiting' && r.textContent.includes('holiday photos') && r.textContent.includes('3.0 MiB') && r.textContent.includes('not in your contacts'))(document.querySelector('[data-test="blob-row"]'))`)
	d.run("accept it", 5*time.Second, chromedp.Click(sel("blob-accept")))
	waitFor(t, "the stub to see the consent", 5*time.Second, func() bool { return stub.blobAccepted(key) })
	d.waitJS("the download's progress", 5*time.Second, `(r => r && r.dataset.state === 'fetching' && !r.querySelector('[data-test="blob-accept"]') && r.querySelector('[data-test="blob-progress"]').value > 0)(document.querySelector('[data-test="blob-row"]'))`)
	stub.fileBlob(key, "The photos.")
	d.waitJS("the mail in INBOX", 5*time.Second, `[...document.querySelectorAll('[data-test="mail-row"]')].some(r => r.textContent.includes('holiday photos') && !r.textContent.includes('Large mail waiting'))`)
	d.waitJS("the offer gone", 10*time.Second, `document.querySelector('[data-test="blob-pending"]').hidden`)
	for _, e := range d.consoleLog() {
		if (e.Type == "error" || e.Type == "exception") && e.Source != "network" { // the 401 before signing in
			t.Errorf("the page logged %s", e)
		}
	}
}
