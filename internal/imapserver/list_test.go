package imapserver

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func listAll(t *testing.T, ts *testServer, ref, pattern string, o *imap.ListOptions) map[string]*imap.ListData {
	t.Helper()
	c := ts.client(t)
	l, err := c.List(ref, pattern, o).Collect()
	if err != nil {
		t.Fatalf("LIST %q %q: %v", ref, pattern, err)
	}
	out := map[string]*imap.ListData{}
	for _, d := range l {
		out[d.Mailbox] = d
	}
	return out
}

func TestListSpecialUse(t *testing.T) {
	ts := newTestServer(t)
	got := listAll(t, ts, "", "*", nil)
	want := map[string]imap.MailboxAttr{
		"INBOX": "", "Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash,
		"Junk": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive, "Chats": "",
	}
	if len(got) != len(want) {
		t.Fatalf("LIST * = %v", got)
	}
	for name, attr := range want {
		d := got[name]
		if d == nil {
			t.Fatalf("%s not listed", name)
		}
		if d.Delim != '/' {
			t.Errorf("%s: delimiter %q", name, d.Delim)
		}
		if attr != "" && !slices.Contains(d.Attrs, attr) {
			t.Errorf("%s: attrs %v, want %s", name, d.Attrs, attr)
		}
		if !slices.Contains(d.Attrs, imap.MailboxAttrHasNoChildren) {
			t.Errorf("%s: attrs %v, want \\HasNoChildren", name, d.Attrs)
		}
	}

	// LIST (SPECIAL-USE) selects only those (RFC 6154 §3).
	su := listAll(t, ts, "", "*", &imap.ListOptions{SelectSpecialUse: true})
	if len(su) != 5 || su["INBOX"] != nil || su["Chats"] != nil {
		t.Errorf("LIST (SPECIAL-USE) = %v", su)
	}
}

func TestListPatterns(t *testing.T) {
	ts := newTestServer(t)
	ctx := testCtx(t)
	for _, n := range []string{"Work/Projects/Tangle", "Work/Admin", "Ünïcode"} {
		if _, err := ts.st.CreateMailbox(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	top := listAll(t, ts, "", "%", nil)
	if top["Work"] == nil || top["Work/Admin"] != nil || top["Ünïcode"] == nil {
		t.Errorf("LIST %% = %v", keys(top))
	}
	if d := top["Work"]; d != nil && !slices.Contains(d.Attrs, imap.MailboxAttrHasChildren) {
		t.Errorf("Work attrs %v", d.Attrs)
	}
	sub := listAll(t, ts, "Work/", "%", nil)
	if len(sub) != 2 || sub["Work/Admin"] == nil || sub["Work/Projects"] == nil {
		t.Errorf(`LIST "Work/" %% = %v`, keys(sub))
	}
	inbox := listAll(t, ts, "", "inbox", nil)
	if len(inbox) != 1 || inbox["INBOX"] == nil {
		t.Errorf("LIST inbox (any case) = %v", keys(inbox))
	}

	// A superior left behind by DELETE is \Noselect, its children stay.
	c := ts.client(t)
	if err := c.Delete("Work/Projects").Wait(); err != nil {
		t.Fatal(err)
	}
	all := listAll(t, ts, "", "Work/*", nil)
	if d := all["Work/Projects"]; d == nil || !slices.Contains(d.Attrs, imap.MailboxAttrNoSelect) {
		t.Errorf("Work/Projects after delete: %v", all["Work/Projects"])
	}
	if all["Work/Projects/Tangle"] == nil {
		t.Errorf("child gone after deleting the parent")
	}

	// Delimiter query.
	r := ts.rawLogin(t)
	if u := r.ok(`LIST "" ""`); !has(u, `* LIST (\Noselect) "/" ""`) {
		t.Errorf(`LIST "" "": %q`, u)
	}
	// Names go out in modified UTF-7 to a client that did not enable UTF8=ACCEPT.
	if u := r.ok(`LIST "" "&ANw-*"`); !has(u, `"&ANw-n&AO8-code"`) {
		t.Errorf("UTF-7 listing: %q", u)
	}
}

func TestListSubscribedAndStatus(t *testing.T) {
	ts := newTestServer(t)
	c := ts.client(t)
	for _, n := range []string{"INBOX", "Sent", "Gone"} {
		if err := c.Subscribe(n).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Unsubscribe("Sent").Wait(); err != nil {
		t.Fatal(err)
	}
	subs := listAll(t, ts, "", "*", &imap.ListOptions{SelectSubscribed: true})
	// The role mailboxes start subscribed.
	if len(subs) != 7 || subs["INBOX"] == nil || subs["Gone"] == nil || subs["Sent"] != nil {
		t.Fatalf("LIST (SUBSCRIBED) = %v", keys(subs))
	}
	if !slices.Contains(subs["Gone"].Attrs, imap.MailboxAttrNonExistent) ||
		!slices.Contains(subs["INBOX"].Attrs, imap.MailboxAttrSubscribed) {
		t.Errorf("attrs: INBOX %v, Gone %v", subs["INBOX"].Attrs, subs["Gone"].Attrs)
	}
	r := ts.rawLogin(t)
	if u := r.ok(`LSUB "" "*"`); len(u) != 7 || !has(u, `* LSUB`, `INBOX`) || has(u, "Sent") {
		t.Errorf("LSUB: %q", u)
	}

	// LIST-STATUS (RFC 5819).
	deliver(t, ts.st, "INBOX", plainMsg("one", "x"))
	deliver(t, ts.st, "INBOX", plainMsg("two", "y"), `\Seen`)
	st := listAll(t, ts, "", "INBOX", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true, Size: true}})
	s := st["INBOX"].Status
	if s == nil || *s.NumMessages != 2 || *s.NumUnseen != 1 || s.UIDNext != 3 || *s.Size == 0 {
		t.Errorf("LIST-STATUS INBOX: %+v", s)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
