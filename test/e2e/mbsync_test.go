package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/store"
)

// maildirMsg is a message file of a local Maildir folder.
type maildirMsg struct {
	path  string
	raw   []byte
	flags string // the Maildir info flags ("FS" = flagged, seen), "" for a file in new/
}

// maildir lists the messages of a Maildir folder (new/ and cur/).
func maildir(t *testing.T, folder string) []maildirMsg {
	t.Helper()
	var out []maildirMsg
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(folder, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p := filepath.Join(folder, sub, e.Name())
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			m := maildirMsg{path: p, raw: raw}
			if _, info, ok := strings.Cut(e.Name(), ":2,"); ok {
				m.flags = info
			}
			out = append(out, m)
		}
	}
	return out
}

func maildirSubjects(t *testing.T, folder string) []string {
	t.Helper()
	var s []string
	for _, m := range maildir(t, folder) {
		s = append(s, headerValue(m.raw, "Subject"))
	}
	slices.Sort(s)
	return s
}

func findMaildir(t *testing.T, folder, subject string) maildirMsg {
	t.Helper()
	for _, m := range maildir(t, folder) {
		if headerValue(m.raw, "Subject") == subject {
			return m
		}
	}
	t.Fatalf("no %q in %s: %q", subject, folder, maildirSubjects(t, folder))
	return maildirMsg{}
}

func storeSubjects(t *testing.T, n *testNode, role store.Role) []string {
	t.Helper()
	var s []string
	for _, m := range mailbox(t, n, role) {
		s = append(s, m.subject())
	}
	slices.Sort(s)
	return s
}

// mbsyncUID strips the ",U=<uid>" mbsync puts in a file name: a file moved to another folder must lose
// it, or mbsync takes it for that folder's message with the same UID (mbsync(1), "RECOMMENDATIONS").
var mbsyncUID = regexp.MustCompile(`,U=\d+`)

var xTUID = regexp.MustCompile(`(?m)^X-TUID: [^\n]*\n`)

// mbsync (isync) mirrors alice's node into a local Maildir, all folders including the special-use ones;
// changes made in the Maildir as a Maildir MUA makes them (flags in the file name, a file moved to
// Archive, a file removed) reach the node on the next run, and new mail on the node reaches the Maildir.
func TestMbsync(t *testing.T) {
	mbsync := needClient(t, "mbsync", "isync libsasl2-modules")
	nodes := startNodes(t, "alice", "bob")
	alice, bob := nodes[0], nodes[1]

	// Alice's account: three mails from bob in INBOX, one of hers in Sent.
	const keep, archive, del, sent = "mbsync keep", "mbsync archive", "mbsync delete", "mbsync sent"
	for _, s := range []string{keep, archive, del} {
		submitDirect(t, bob, alice.addr, s, "body of "+s)
	}
	submitDirect(t, alice, bob.addr, sent, "alice wrote this")
	waitFor(t, "bob's three mails in alice's INBOX", 40*time.Second, func() bool {
		return len(mailbox(t, alice, store.RoleInbox)) == 3
	})

	c := newClient(t)
	local := filepath.Join(c.home, "Mail")
	if err := os.Mkdir(local, 0o700); err != nil { // mbsync creates folders, not the store's root
		t.Fatal(err)
	}
	host, port := alice.imapHostPort(t)
	rc := writeFile(t, filepath.Join(c.home, "mbsyncrc"), fmt.Sprintf(`IMAPAccount alice
Host %s
Port %s
User %s
PassCmd "cat %s"
SSLType STARTTLS
CertificateFile %s
AuthMechs PLAIN
Timeout 20

IMAPStore alice-node
Account alice

MaildirStore alice-local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel alice
Far :alice-node:
Near :alice-local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
`, host, port, alice.addr, filepath.Join(alice.dir, "password"), alice.certFile(), local, local))
	sync := func(what string) {
		t.Helper()
		out, err := c.run("", mbsync, "-c", rc, "-a")
		if err != nil {
			t.Fatalf("mbsync (%s): %v\n%s", what, err, out)
		}
		if strings.Contains(out, "Warning") || strings.Contains(out, "Error") {
			t.Errorf("mbsync (%s) complained:\n%s", what, out)
		}
	}

	sync("first")
	for _, f := range []string{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Chats"} {
		if fi, err := os.Stat(filepath.Join(local, f, "cur")); err != nil || !fi.IsDir() {
			t.Errorf("mbsync made no Maildir for %s: %v", f, err)
		}
	}
	if got, want := maildirSubjects(t, filepath.Join(local, "INBOX")), []string{archive, del, keep}; !slices.Equal(got, want) {
		t.Fatalf("local INBOX %q, want %q", got, want)
	}
	if got := maildirSubjects(t, filepath.Join(local, "Sent")); !slices.Equal(got, []string{sent}) {
		t.Fatalf("local Sent %q, want %q", got, []string{sent})
	}
	for _, m := range maildir(t, filepath.Join(local, "INBOX")) {
		stored, ok := findSubject(mailbox(t, alice, store.RoleInbox), headerValue(m.raw, "Subject"))
		// mbsync stores lines with LF endings, as Maildir MUAs expect, and adds an X-TUID field to
		// the header that it uses to track messages in flight.
		want := bytes.ReplaceAll(stored.Raw, []byte("\r\n"), []byte("\n"))
		got := xTUID.ReplaceAll(m.raw, nil)
		if !ok || !bytes.Equal(want, got) {
			t.Errorf("local copy of %q differs from the node's:\n%q\n%q", headerValue(m.raw, "Subject"), got, want)
		}
	}

	// As a Maildir MUA would: read and flag one, move one to Archive, delete one.
	k := findMaildir(t, filepath.Join(local, "INBOX"), keep)
	base, _, _ := strings.Cut(filepath.Base(k.path), ":2,")
	rename(t, k.path, filepath.Join(local, "INBOX", "cur", base+":2,FS"))
	a := findMaildir(t, filepath.Join(local, "INBOX"), archive)
	base, info, _ := strings.Cut(filepath.Base(a.path), ":2,")
	rename(t, a.path, filepath.Join(local, "Archive", "cur", mbsyncUID.ReplaceAllString(base, "")+":2,"+info))
	if err := os.Remove(findMaildir(t, filepath.Join(local, "INBOX"), del).path); err != nil {
		t.Fatal(err)
	}

	sync("after local changes")
	inbox := mailbox(t, alice, store.RoleInbox)
	if got := storeSubjects(t, alice, store.RoleInbox); !slices.Equal(got, []string{keep}) {
		t.Fatalf("alice's INBOX on the node %q, want %q", got, []string{keep})
	}
	if f := inbox[0].Flags; !f.Has(`\Seen`) || !f.Has(`\Flagged`) || f.Has(`\Deleted`) {
		t.Errorf("flags of %q on the node: %v, want \\Seen \\Flagged", keep, f.Strings())
	}
	if got := storeSubjects(t, alice, store.RoleArchive); !slices.Equal(got, []string{archive}) {
		t.Errorf("alice's Archive on the node %q, want %q", got, []string{archive})
	} else if m, _ := findSubject(mailbox(t, alice, store.RoleArchive), archive); !strings.Contains(string(m.Raw), "body of "+archive) {
		t.Errorf("archived message on the node:\n%s", m.Raw)
	}
	for _, role := range []store.Role{store.RoleInbox, store.RoleArchive, store.RoleTrash} {
		if _, ok := findSubject(mailbox(t, alice, role), del); ok {
			t.Errorf("the deleted message is still in %s on the node", role)
		}
	}
	if got := storeSubjects(t, alice, store.RoleSent); !slices.Equal(got, []string{sent}) {
		t.Errorf("alice's Sent on the node %q, want %q", got, []string{sent})
	}

	// New mail on the node reaches the Maildir on the next run, unread.
	const fresh = "mbsync fresh"
	submitDirect(t, bob, alice.addr, fresh, "body of "+fresh)
	waitForSubject(t, alice, store.RoleInbox, fresh, 30*time.Second)
	sync("after new mail")
	if got, want := maildirSubjects(t, filepath.Join(local, "INBOX")), []string{fresh, keep}; !slices.Equal(got, want) {
		t.Fatalf("local INBOX %q, want %q", got, want)
	}
	if m := findMaildir(t, filepath.Join(local, "INBOX"), fresh); strings.Contains(m.flags, "S") || !strings.Contains(string(m.raw), "body of "+fresh) {
		t.Errorf("new mail in the Maildir: flags %q\n%s", m.flags, m.raw)
	}
	if m := findMaildir(t, filepath.Join(local, "INBOX"), keep); m.flags != "FS" {
		t.Errorf("local flags of %q: %q, want FS", keep, m.flags)
	}
	if got := maildirSubjects(t, filepath.Join(local, "Archive")); !slices.Equal(got, []string{archive}) {
		t.Errorf("local Archive %q, want %q", got, []string{archive})
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}
