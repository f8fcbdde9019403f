package browser_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tanglemail/tanglemail/internal/api"
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

// TestLargeMailSendProgressAgainstStub: the compose tray follows a large mail through GET
// /api/blobs/sent: sealing, uploading to the storage node, then published and waiting for the
// recipient's download, then downloaded.
func TestLargeMailSendProgressAgainstStub(t *testing.T) {
	b := newBrowser(t)
	stub, srv := newStub(t, "stub-password", stubMe)
	d := b.newTab("desktop", 1280, 900)
	d.signIn(srv.URL, "stub-password", true)
	d.addContact("bob", stubBob)
	d.run("open mail", 5*time.Second, chromedp.Click(sel("nav-mail")), chromedp.WaitVisible(sel("folder-list")))
	d.run("compose", 5*time.Second,
		chromedp.Click(sel("compose-open")),
		chromedp.WaitVisible(sel("compose-to")),
		chromedp.SendKeys(sel("compose-to"), "bob"),
		chromedp.SendKeys(sel("compose-subject"), "the photos"),
		chromedp.SendKeys(sel("compose-text"), "Here."),
		chromedp.Click(sel("compose-send")),
		chromedp.WaitVisible(sel("pow-progress")),
	)
	id := stub.lastOutboxID()
	send := api.BlobSend{OutboxID: id, Subject: "the photos", Size: 8 << 20, Stage: "sealing", Sealed: 4 << 20, Providers: 1}
	stub.setSend(send)
	item := `document.querySelector('[data-test="pow-progress"]')`
	d.waitJS("sealing", 5*time.Second, `(e => e.dataset.stage === 'sealing' && e.dataset.percent === '50' && e.textContent.includes('sealing the attachment 50%'))(`+item+`)`)
	send.Stage, send.Sealed, send.Uploaded = "uploading", send.Size, 2<<20
	stub.setSend(send)
	d.waitJS("uploading", 5*time.Second, `(e => e.dataset.stage === 'uploading' && e.textContent.includes('uploading to your storage node 25%'))(`+item+`)`)
	send.Stage, send.Uploaded, send.ProvidersDone = "offered", send.Size, 1
	send.Recipients = []api.BlobRecipient{{Address: stubBob, State: "offered"}}
	stub.setSend(send)
	d.waitJS("waiting for bob's download", 5*time.Second, `(e => e.dataset.state === 'offered' && e.textContent.includes('0 of 1 downloaded, waiting for bob'))(`+item+`)`)
	send.Stage, send.Recipients[0].State = "done", "fetched"
	stub.setSend(send)
	d.waitJS("downloaded", 15*time.Second, `(e => e.dataset.state === 'done' && e.textContent.includes('downloaded by every recipient'))(`+item+`)`)
	for _, e := range d.consoleLog() {
		if (e.Type == "error" || e.Type == "exception") && e.Source != "network" {
			t.Errorf("the page logged %s", e)
		}
	}
}
