package browser_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tanglemail/tanglemail/internal/api"
)

// TestComposeAttachmentsAndBcc: mail is the first view after sign-in; alice composes a mail to bob with
// a blind copy to carol and two attachments, one from the file picker and one dropped on the dialog,
// watches the upload's progress, and sends. bob and carol each get the mail with both files intact;
// neither copy has a Bcc field; alice's Sent copy shows the Bcc, and its move-to list does not start at
// a folder.
func TestComposeAttachmentsAndBcc(t *testing.T) {
	nodes := startNodes(t, "alice", "bob", "carol")
	alice, bob, carol := nodes[0], nodes[1], nodes[2]
	for _, c := range []api.Contact{{Petname: "bob", Address: bob.addr}, {Petname: "carol", Address: carol.addr}} {
		if code := apiCall(t, alice, "POST", "/api/contacts", c, nil); code != http.StatusCreated {
			t.Fatalf("add contact %s: %d", c.Petname, code)
		}
	}

	// A binary file (every byte value), and a small text file to drop.
	picked := make([]byte, 4_000)
	rand.Read(picked)
	file := filepath.Join(t.TempDir(), "photo.bin")
	if err := os.WriteFile(file, picked, 0o600); err != nil {
		t.Fatal(err)
	}
	const dropped = "dropped on the dialog\nline two\n"

	b := newBrowser(t)
	ta := b.newTab("alice", 1280, 900)
	ta.signIn(alice.url, alice.Password(), true)
	ta.waitJS("mail as the first view", 10*time.Second, `document.body.dataset.view === 'mail' && location.hash.startsWith('#/mail') && !document.querySelector('[data-test="view-mail"]').hidden`)

	ta.run("alice composes with Bcc and a picked file", 15*time.Second,
		chromedp.WaitVisible(sel("compose-open")),
		chromedp.Click(sel("compose-open")),
		chromedp.WaitVisible(sel("compose-to")),
		chromedp.SendKeys(sel("compose-to"), "bob"),
		chromedp.SendKeys(sel("compose-bcc"), "carol"),
		chromedp.SendKeys(sel("compose-subject"), "Holiday pictures"),
		chromedp.SendKeys(sel("compose-text"), "Two files for you."),
		chromedp.SetUploadFiles(sel("compose-files"), []string{file}),
	)
	ta.waitJS("the picked file listed", 10*time.Second, `document.querySelector('[data-test="compose-attachment"][data-name="photo.bin"]')`)
	// A drop as the browser delivers one: a drop event whose DataTransfer holds the file.
	eval[bool](ta, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([`+jsString(dropped)+`], 'notes.txt', { type: 'text/plain' }));
		const d = document.querySelector('[data-test="compose"]');
		d.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
		return d.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
	})()`)
	ta.waitJS("the dropped file listed", 10*time.Second, `document.querySelectorAll('[data-test="compose-attachment"]').length === 2 && document.querySelector('[data-test="compose-attachment"][data-name="notes.txt"]')`)
	ta.run("alice sends", 10*time.Second, chromedp.Click(sel("compose-send")))
	ta.waitJS("the upload done and the dialog closed", 20*time.Second,
		`document.querySelector('[data-test="compose-upload"]').dataset.percent === '100' && !document.querySelector('[data-test="compose"]').open`)
	if msg := eval[string](ta, `(() => { const e = document.querySelector('[data-test="compose-error"]'); return e.hidden ? '' : e.textContent; })()`); msg != "" {
		t.Fatalf("compose error: %s", msg)
	}

	// Each recipient gets the files intact, and no Bcc field.
	t.Cleanup(func() {
		if t.Failed() {
			var ob api.OutboxItems
			apiCall(t, alice, "GET", "/api/outbox", nil, &ob)
			t.Logf("alice's outbox: %+v", ob)
		}
	})
	for _, n := range []*testNode{bob, carol} {
		m := waitForMail(t, n, "Holiday pictures")
		if len(m.Attachments) != 2 || m.Attachments[0].Name != "photo.bin" || m.Attachments[1].Name != "notes.txt" {
			t.Fatalf("%s: attachments %+v", n.name, m.Attachments)
		}
		if len(m.Bcc) != 0 {
			t.Errorf("%s's copy shows Bcc %+v", n.name, m.Bcc)
		}
		base := fmt.Sprintf("/api/folders/%d/messages/%d", m.Folder, m.UID)
		if got := apiBytes(t, n, base+"/attachments/0"); string(got) != string(picked) {
			t.Errorf("%s: the picked file arrived as %d bytes, not the %d sent", n.name, len(got), len(picked))
		}
		if got := apiBytes(t, n, base+"/attachments/1"); string(got) != dropped {
			t.Errorf("%s: the dropped file arrived as %q", n.name, got)
		}
		raw := string(apiBytes(t, n, base+"/raw"))
		head, _, _ := strings.Cut(raw, "\r\n\r\n")
		if strings.Contains(strings.ToLower(head), "\nbcc:") || strings.HasPrefix(strings.ToLower(head), "bcc:") || strings.Contains(raw, carol.addr) {
			t.Errorf("%s's copy names the blind recipient:\n%s", n.name, head)
		}
	}

	// alice's Sent copy keeps the Bcc, and the reader shows it; the move-to list starts at "Move to…".
	sent := waitForMail(t, alice, "Holiday pictures")
	if len(sent.Bcc) != 1 || sent.Bcc[0].Address != carol.addr {
		t.Fatalf("Sent copy's bcc %+v", sent.Bcc)
	}
	ta.run("alice opens her Sent copy", 10*time.Second,
		chromedp.Navigate(fmt.Sprintf("%s/#/mail/%d/%d", alice.url, sent.Folder, sent.UID)),
		chromedp.WaitVisible(sel("mail-body")),
	)
	ta.waitJS("the Bcc shown, and move-to not preselecting a folder", 10*time.Second,
		`document.querySelector('[data-test="mail-bcc"]').textContent === 'carol' && document.querySelector('[data-test="mail-move-to"]').value === ''`)
}

// waitForMail waits until a message with subject is in one of n's folders (INBOX for a recipient,
// Sent for the sender) and returns its detail.
func waitForMail(t *testing.T, n *testNode, subject string) api.MessageDetail {
	t.Helper()
	var found api.Message
	// Proof of work grows with the message's size: a mail with attachments takes longer than a chat
	// line, more so on a loaded machine.
	waitFor(t, n.name+" to have the mail "+subject, 4*deliverWithin, func() bool {
		var fs api.Folders
		apiCall(t, n, "GET", "/api/folders", nil, &fs)
		for _, f := range fs.Folders {
			if f.Role != "inbox" && f.Role != "sent" {
				continue
			}
			var ms api.Messages
			apiCall(t, n, "GET", fmt.Sprintf("/api/folders/%d/messages", f.ID), nil, &ms)
			for _, m := range ms.Messages {
				if m.Subject == subject {
					found = m
					return true
				}
			}
		}
		return false
	})
	var d api.MessageDetail
	if code := apiCall(t, n, "GET", fmt.Sprintf("/api/folders/%d/messages/%d", found.Folder, found.UID), nil, &d); code != http.StatusOK {
		t.Fatalf("%s: message detail: %d", n.name, code)
	}
	return d
}

// apiBytes GETs path of n's API and returns the body.
func apiBytes(t *testing.T, n *testNode, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+n.APIAddr()+path, nil)
	req.Header.Set("Authorization", "Bearer "+n.Password())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: GET %s: %s %s", n.name, path, resp.Status, b)
	}
	return b
}
