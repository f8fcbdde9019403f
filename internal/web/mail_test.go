package web

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-message"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/store"
)

type listing struct {
	Messages []api.Message `json:"messages"`
	More     bool          `json:"more"`
}

func (e *env) list(folder store.MailboxID, query string) listing {
	e.t.Helper()
	var l listing
	e.call("GET", fmt.Sprintf("/api/folders/%d/messages%s", folder, query), nil).mustCode(e.t, 200).decode(e.t, &l)
	return l
}

func uids(ms []api.Message) []store.UID {
	var out []store.UID
	for _, m := range ms {
		out = append(out, m.UID)
	}
	return out
}

func TestFolders(t *testing.T) {
	e := newEnv(t)
	inbox := e.folder(store.RoleInbox)
	e.deliver(inbox, simpleMail("a@x", "b@x", "one", "1"))
	e.deliver(inbox, simpleMail("a@x", "b@x", "two", "2"), `\Seen`)
	if _, err := e.store.CreateMailbox(ctxT(t), "Projects"); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Folders []api.Folder `json:"folders"`
	}
	e.call("GET", "/api/folders", nil).mustCode(t, 200).decode(t, &got)
	var roles []string
	for _, f := range got.Folders {
		roles = append(roles, f.Role)
	}
	want := []string{"inbox", "drafts", "sent", "archive", "junk", "trash", "chats", ""}
	if !slices.Equal(roles, want) {
		t.Fatalf("roles %v, want %v", roles, want)
	}
	if f := got.Folders[0]; f.ID != int64(inbox) || f.Name != "INBOX" || f.Messages != 2 || f.Unseen != 1 {
		t.Fatalf("inbox %+v", f)
	}
	if f := got.Folders[7]; f.Name != "Projects" || f.Messages != 0 {
		t.Fatalf("last %+v", f)
	}
}

func TestListMessages(t *testing.T) {
	e := newEnv(t)
	inbox := e.folder(store.RoleInbox)
	for i := 1; i <= 5; i++ {
		word := "common"
		if i%2 == 0 {
			word = "even"
		}
		e.deliver(inbox, simpleMail("a@x", "b@x", fmt.Sprintf("msg %d", i), "body "+word+" text"))
	}
	cases := []struct {
		query string
		want  []store.UID
		more  bool
	}{
		{"", []store.UID{5, 4, 3, 2, 1}, false},
		{"?limit=2", []store.UID{5, 4}, true},
		{"?limit=2&before=4", []store.UID{3, 2}, true},
		{"?limit=2&before=3", []store.UID{2, 1}, false},
		{"?before=2", []store.UID{1}, false},
		{"?before=1", nil, false},
		{"?before=100", []store.UID{5, 4, 3, 2, 1}, false},
		{"?limit=500", []store.UID{5, 4, 3, 2, 1}, false},
		{"?q=even", []store.UID{4, 2}, false},
		{"?q=EVEN+text", []store.UID{4, 2}, false},
		{"?q=even&limit=1", []store.UID{4}, true},
		{"?q=even&before=4", []store.UID{2}, false},
		{"?q=msg+3", []store.UID{3}, false},
		{"?q=nothing-like-this", nil, false},
		{"?q=+++", []store.UID{5, 4, 3, 2, 1}, false},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			l := e.list(inbox, c.query)
			if !slices.Equal(uids(l.Messages), c.want) || l.More != c.more {
				t.Fatalf("uids %v more %v, want %v %v", uids(l.Messages), l.More, c.want, c.more)
			}
			if l.Messages == nil && !strings.Contains(string(e.call("GET", fmt.Sprintf("/api/folders/%d/messages%s", inbox, c.query), nil).body), `"messages": []`) {
				t.Fatal("empty listing is not []")
			}
		})
	}
}

func TestListMessagesBadInput(t *testing.T) {
	e := newEnv(t)
	inbox := e.folder(store.RoleInbox)
	cases := []struct {
		path   string
		code   int
		errHas string
	}{
		{"/api/folders/abc/messages", 400, "folder id"},
		{"/api/folders/0/messages", 400, "folder id"},
		{"/api/folders/-1/messages", 400, "folder id"},
		{"/api/folders/99999999999999999999/messages", 400, "folder id"},
		{"/api/folders/999/messages", 404, "no such folder"},
		{fmt.Sprintf("/api/folders/%d/messages?limit=0", inbox), 400, "limit"},
		{fmt.Sprintf("/api/folders/%d/messages?limit=501", inbox), 400, "limit"},
		{fmt.Sprintf("/api/folders/%d/messages?limit=x", inbox), 400, "limit"},
		{fmt.Sprintf("/api/folders/%d/messages?before=0", inbox), 400, "before"},
		{fmt.Sprintf("/api/folders/%d/messages?before=-3", inbox), 400, "before"},
		{fmt.Sprintf("/api/folders/%d/messages?before=4294967296", inbox), 400, "before"},
		{fmt.Sprintf("/api/folders/%d/messages?q=%s", inbox, strings.Repeat("x", maxQuery+1)), 400, "q must"},
		{fmt.Sprintf("/api/folders/%d/messages?q=%%ff", inbox), 400, "q must"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			r := e.call("GET", c.path, nil).mustCode(t, c.code)
			r.mustErr(t, c.errHas)
		})
	}
}

// multipartMail has a text and an HTML alternative, and a PDF attachment.
func multipartMail(from string) string {
	return "From: =?utf-8?q?J=C3=BCrgen?= <" + from + ">\r\n" +
		"To: Bob <bob@tangle>, carol@tangle\r\n" +
		"Cc: Dave <dave@tangle>\r\n" +
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" +
		"Date: Tue, 24 Nov 2026 11:00:00 +0100\r\n" +
		"Message-ID: <multi@tangle>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=outer\r\n" +
		"\r\n" +
		"--outer\r\n" +
		"Content-Type: multipart/alternative; boundary=inner\r\n" +
		"\r\n" +
		"--inner\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"\r\n" +
		"Hallo Bob, sch=F6ne Gr=FC=DFe.\r\n" +
		"--inner\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n" +
		"\r\n" +
		"<p>Hallo <b>Bob</b></p><script>alert(1)</script><img src=\"http://tracker.example/t.gif\">\r\n" +
		"--inner--\r\n" +
		"--outer\r\n" +
		"Content-Type: application/pdf; name=\"report.pdf\"\r\n" +
		"Content-Disposition: attachment; filename=\"report.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"\r\n" +
		"JVBERi0xLjQKJcfsj6IK\r\n" +
		"--outer--\r\n"
}

func TestMessage(t *testing.T) {
	e := newEnv(t)
	inbox := e.folder(store.RoleInbox)
	sender := newAddress(t)
	if err := e.store.AddContact(ctxT(t), "bob", "bob@tangle"); err != nil {
		t.Fatal(err)
	}
	a, err := e.store.Append(ctxT(t), store.NewMessage{MailboxID: inbox, Raw: []byte(multipartMail(sender)),
		Meta: store.Meta{SenderVerified: sender}})
	if err != nil {
		t.Fatal(err)
	}
	var d api.MessageDetail
	e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d", inbox, a.UID), nil).mustCode(t, 200).decode(t, &d)
	if d.UID != a.UID || d.Folder != int64(inbox) || d.Subject != "Grüße" || d.Seen || d.Flagged || d.Delivered {
		t.Fatalf("detail %+v", d)
	}
	if d.From != (api.Person{Address: sender, Name: "Jürgen"}) {
		t.Fatalf("from %+v", d.From)
	}
	// bob is a contact: his petname wins over the display name.
	if len(d.To) != 2 || d.To[0] != (api.Person{Address: "bob@tangle", Name: "bob"}) || d.To[1] != (api.Person{Address: "carol@tangle"}) {
		t.Fatalf("to %+v", d.To)
	}
	if len(d.Cc) != 1 || d.Cc[0] != (api.Person{Address: "dave@tangle", Name: "Dave"}) {
		t.Fatalf("cc %+v", d.Cc)
	}
	if d.Date.String() != "2026-11-24 10:00:00 +0000 UTC" {
		t.Fatalf("date %v", d.Date)
	}
	if d.Text != "Hallo Bob, schöne Grüße." || !d.HasHTML || d.SenderVerified != sender {
		t.Fatalf("text %q has_html %v verified %q", d.Text, d.HasHTML, d.SenderVerified)
	}
	if d.Preview != "Hallo Bob, schöne Grüße." {
		t.Fatalf("preview %q", d.Preview)
	}
	if len(d.Attachments) != 1 || d.Attachments[0] != (api.Attachment{Name: "report.pdf", Type: "application/pdf", Size: 15}) {
		t.Fatalf("attachments %+v", d.Attachments)
	}
	// The attachment downloads decoded, always as an opaque download.
	base := fmt.Sprintf("/api/folders/%d/messages/%d/attachments/", inbox, a.UID)
	att := e.call("GET", base+"0", nil).mustCode(t, 200)
	if string(att.body) != "%PDF-1.4\n%\xc7\xec\x8f\xa2\n" || att.hdr.Get("Content-Type") != "application/octet-stream" ||
		att.hdr.Get("Content-Disposition") != "attachment; filename*=UTF-8''report.pdf" || att.hdr.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("attachment: %q %v", att.body, att.hdr)
	}
	e.call("GET", base+"1", nil).mustCode(t, 404).errMsg(t)
	e.call("GET", base+"-1", nil).mustCode(t, 400).errMsg(t)
	e.call("GET", base+"x", nil).mustCode(t, 400).errMsg(t)
	if len(d.Flags) != 0 || d.Flags == nil {
		t.Fatalf("flags %v", d.Flags)
	}

	// The same fields in the listing, without cc/text/attachments.
	l := e.list(inbox, "")
	if len(l.Messages) != 1 || l.Messages[0].Subject != "Grüße" || l.Messages[0].Preview != d.Preview ||
		l.Messages[0].From != d.From {
		t.Fatalf("listing %+v", l.Messages)
	}
	if strings.Contains(string(e.call("GET", fmt.Sprintf("/api/folders/%d/messages", inbox), nil).body), "attachments") {
		t.Fatal("listing has attachments")
	}

	// Raw is the stored bytes.
	r := e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d/raw", inbox, a.UID), nil).mustCode(t, 200)
	if string(r.body) != multipartMail(sender) || r.hdr.Get("Content-Type") != "message/rfc822" {
		t.Fatalf("raw %q %q", r.hdr.Get("Content-Type"), r.body)
	}

	// HTML is sanitized and served under the CSP of docs/api.md.
	r = e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d/html", inbox, a.UID), nil).mustCode(t, 200)
	if got := r.hdr.Get("Content-Security-Policy"); got != "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox allow-popups allow-popups-to-escape-sandbox" {
		t.Fatalf("CSP %q", got)
	}
	if r.hdr.Get("X-Content-Type-Options") != "nosniff" || r.hdr.Get("Referrer-Policy") != "no-referrer" ||
		r.hdr.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("headers %v", r.hdr)
	}
	body := string(r.body)
	if !strings.Contains(body, "<p>Hallo <b>Bob</b></p>") || strings.Contains(body, "script") || strings.Contains(body, "tracker") {
		t.Fatalf("html %s", body)
	}
}

func TestMessageVariants(t *testing.T) {
	e := newEnv(t)
	inbox := e.folder(store.RoleInbox)
	long := strings.Repeat("word ", 100)
	cases := []struct {
		name, raw   string
		text        string
		preview     string
		hasHTML     bool
		attachments int
	}{
		{"plain, no MIME", "From: a@tangle\r\nSubject: s\r\n\r\nline one\r\nline two\r\n", "line one\nline two\n", "line one line two", false, 0},
		{"no header at all", "just text", "", "", false, 0},
		{"html only", "From: a@tangle\r\nContent-Type: text/html\r\n\r\n<html><head><title>T</title><style>p{}</style></head><body><p>Hi <a href=\"https://x.example/\">there</a></p><ul><li>one</li><li>two</li></ul></body></html>",
			"Hi there <https://x.example/>\n- one\n- two", "Hi there <https://x.example/> - one - two", true, 0},
		{"long preview", "From: a@tangle\r\n\r\n" + long, long, strings.TrimSpace(long[:200]), false, 0},
		{"flowed", "From: a@tangle\r\nContent-Type: text/plain; format=flowed\r\n\r\nthis is \r\nflowed\r\n> quoted \r\n> too\r\n", "this is flowed\n> quoted too\n", "this is flowed > quoted too", false, 0},
		{"unknown charset", "From: a@tangle\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\nhello\r\n", "hello\n", "hello", false, 0},
		{"broken multipart", "From: a@tangle\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\npart one\r\n--b\r\nContent-Type: image/png\r\n\r\nunterminated",
			"part one", "part one", false, 1},
		{"inline image is an attachment", "From: a@tangle\r\nContent-Type: multipart/related; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<img src=\"cid:x\">pic\r\n--b\r\nContent-Type: image/png\r\nContent-ID: <x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n",
			"pic", "pic", true, 1},
		{"malformed From", "From: <<<@@@\r\nSubject: x\r\n\r\nbody", "body", "body", false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			uid := e.deliver(inbox, c.raw)
			var d api.MessageDetail
			e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d", inbox, uid), nil).mustCode(t, 200).decode(t, &d)
			if d.Text != c.text || d.Preview != c.preview || d.HasHTML != c.hasHTML || len(d.Attachments) != c.attachments {
				t.Fatalf("text %q preview %q html %v attachments %v", d.Text, d.Preview, d.HasHTML, d.Attachments)
			}
			if d.Date.IsZero() {
				t.Fatal("no date (the internal date is the fallback)")
			}
			code := 200
			if !c.hasHTML {
				code = 404
			}
			e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d/html", inbox, uid), nil).mustCode(t, code)
		})
	}
}

func TestMessageNotFound(t *testing.T) {
	e := newEnv(t)
	inbox := e.folder(store.RoleInbox)
	e.deliver(inbox, simpleMail("a@x", "b@x", "one", "1"))
	for _, suffix := range []string{"", "/html", "/raw"} {
		cases := []struct {
			path string
			code int
		}{
			{fmt.Sprintf("/api/folders/%d/messages/2%s", inbox, suffix), 404},
			{fmt.Sprintf("/api/folders/999/messages/1%s", suffix), 404},
			{fmt.Sprintf("/api/folders/%d/messages/0%s", inbox, suffix), 400},
			{fmt.Sprintf("/api/folders/%d/messages/x%s", inbox, suffix), 400},
			{fmt.Sprintf("/api/folders/%d/messages/4294967296%s", inbox, suffix), 400},
			{fmt.Sprintf("/api/folders/x/messages/1%s", suffix), 400},
		}
		for _, c := range cases {
			e.call("GET", c.path, nil).mustCode(t, c.code).errMsg(t)
		}
	}
}

func TestFlags(t *testing.T) {
	e := newEnv(t)
	inbox := e.folder(store.RoleInbox)
	uid := e.deliver(inbox, simpleMail("a@x", "b@x", "one", "1"), `\Flagged`)
	path := fmt.Sprintf("/api/folders/%d/messages/%d/flags", inbox, uid)
	cases := []struct {
		name   string
		body   any
		code   int
		flags  []string
		errHas string
	}{
		{"add seen, remove flagged", map[string]any{"add": []string{`\Seen`, "todo"}, "remove": []string{`\Flagged`}}, 200, []string{`\Seen`, "todo"}, ""},
		{"again: no change", map[string]any{"add": []string{`\Seen`}}, 200, []string{`\Seen`, "todo"}, ""},
		{"remove only", map[string]any{"remove": []string{"TODO"}}, 200, []string{`\Seen`}, ""},
		{"nothing", map[string]any{}, 400, nil, "give the flags"},
		{"empty lists", map[string]any{"add": []string{}, "remove": []string{}}, 400, nil, "give the flags"},
		{"bad system flag", map[string]any{"add": []string{`\Bogus`}}, 400, nil, `field "add"`},
		{"bad keyword", map[string]any{"remove": []string{"has space"}}, 400, nil, `field "remove"`},
		{"both", map[string]any{"add": []string{`\Seen`}, "remove": []string{`\seen`}}, 400, nil, "both"},
		{"not a list", map[string]any{"add": `\Seen`}, 400, nil, `"add" must be an array`},
		{"unknown field", map[string]any{"set": []string{`\Seen`}}, 400, nil, `unknown field "set"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.call("POST", path, c.body).mustCode(t, c.code)
			if r.failed(t, c.errHas) {
				return
			}
			var got struct {
				Flags []string `json:"flags"`
			}
			r.decode(t, &got)
			if !slices.Equal(got.Flags, c.flags) {
				t.Fatalf("flags %v, want %v", got.Flags, c.flags)
			}
			m, err := e.store.Message(ctxT(t), inbox, uid)
			if err != nil || !slices.Equal(m.Flags.Strings(), c.flags) {
				t.Fatalf("stored flags %v, %v", m.Flags.Strings(), err)
			}
		})
	}
	e.call("POST", fmt.Sprintf("/api/folders/%d/messages/9/flags", inbox), map[string]any{"add": []string{`\Seen`}}).mustCode(t, 404)
	e.call("POST", "/api/folders/999/messages/1/flags", map[string]any{"add": []string{`\Seen`}}).mustCode(t, 404)

	// Delivered shows in listings.
	sent := e.folder(store.RoleSent)
	e.deliver(sent, simpleMail("me@tangle", "b@x", "mine", "x"), "$Delivered")
	if l := e.list(sent, ""); !l.Messages[0].Delivered {
		t.Fatalf("listing %+v", l.Messages)
	}
}

func TestMove(t *testing.T) {
	e := newEnv(t)
	inbox, archive := e.folder(store.RoleInbox), e.folder(store.RoleArchive)
	uid := e.deliver(inbox, simpleMail("a@x", "b@x", "one", "1"))
	path := fmt.Sprintf("/api/folders/%d/messages/%d/move", inbox, uid)
	cases := []struct {
		name   string
		body   any
		code   int
		errHas string
	}{
		{"missing to", map[string]any{}, 400, `"to"`},
		{"zero", map[string]any{"to": 0}, 400, `"to"`},
		{"string", map[string]any{"to": "Archive"}, 400, `"to" must be a number`},
		{"same folder", map[string]any{"to": inbox}, 400, "already"},
		{"no such folder", map[string]any{"to": 999}, 404, "no such folder"},
		{"ok", map[string]any{"to": archive}, 200, ""},
		{"gone now", map[string]any{"to": archive}, 404, "no such message"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.call("POST", path, c.body).mustCode(t, c.code)
			if r.failed(t, c.errHas) {
				return
			}
			var got struct {
				Folder int64     `json:"folder"`
				UID    store.UID `json:"uid"`
			}
			r.decode(t, &got)
			if got.Folder != int64(archive) || got.UID != 1 {
				t.Fatalf("moved to %+v", got)
			}
		})
	}
	if l := e.list(archive, ""); len(l.Messages) != 1 || l.Messages[0].Subject != "one" {
		t.Fatalf("archive %+v", l)
	}
	if l := e.list(inbox, ""); len(l.Messages) != 0 {
		t.Fatalf("inbox %+v", l)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	inbox, trash := e.folder(store.RoleInbox), e.folder(store.RoleTrash)
	uid := e.deliver(inbox, simpleMail("a@x", "b@x", "one", "1"))
	e.call("DELETE", fmt.Sprintf("/api/folders/%d/messages/%d", inbox, uid), nil).mustCode(t, 204)
	l := e.list(trash, "")
	if len(l.Messages) != 1 || l.Messages[0].Subject != "one" {
		t.Fatalf("trash %+v", l)
	}
	e.call("DELETE", fmt.Sprintf("/api/folders/%d/messages/%d", inbox, uid), nil).mustCode(t, 404)
	// In Trash, delete is for good.
	e.call("DELETE", fmt.Sprintf("/api/folders/%d/messages/%d", trash, l.Messages[0].UID), nil).mustCode(t, 204)
	if l := e.list(trash, ""); len(l.Messages) != 0 {
		t.Fatalf("trash after delete %+v", l)
	}
	e.call("DELETE", fmt.Sprintf("/api/folders/%d/messages/%d", trash, l.Messages[0].UID), nil).mustCode(t, 404)
	e.call("DELETE", "/api/folders/999/messages/1", nil).mustCode(t, 404)
	e.call("DELETE", "/api/folders/1/messages/zero", nil).mustCode(t, 400)
}

type sendAnswer struct {
	OutboxID int64     `json:"outbox_id"`
	Folder   int64     `json:"folder"`
	UID      store.UID `json:"uid"`
}

func TestSend(t *testing.T) {
	e := newEnv(t)
	bob, carol := newAddress(t), newAddress(t)
	if err := e.store.AddContact(ctxT(t), "Bob", bob); err != nil {
		t.Fatal(err)
	}
	text := "Hello Bob,\nthis line is long enough to need quoted-printable encoding, " +
		"since it goes well beyond seventy-eight characters.\nGrüße\n"
	var got sendAnswer
	e.call("POST", "/api/messages", map[string]any{
		"to":          []string{"bob", strings.TrimSuffix(carol, "@tangle")},
		"cc":          []string{bob},
		"subject":     "Grüße aus Köln",
		"text":        text,
		"in_reply_to": "<orig@tangle>",
	}).mustCode(t, 202).decode(t, &got)
	if got.OutboxID == 0 || got.Folder != int64(e.folder(store.RoleSent)) || got.UID != 1 {
		t.Fatalf("answer %+v", got)
	}

	raw, err := e.store.Raw(ctxT(t), store.MailboxID(got.Folder), got.UID)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.Parse(raw)
	if err != nil {
		t.Fatalf("the sent message does not parse: %v\n%s", err, raw)
	}
	if len(m.From) != 1 || m.From[0].Address != e.me || m.Subject != "Grüße aus Köln" || m.InReplyTo != "orig@tangle" ||
		!m.HasDate || !strings.HasSuffix(m.MessageID, "@tangle") {
		t.Fatalf("header %+v\n%s", m, raw)
	}
	if len(m.To) != 2 || m.To[0].Address != bob || m.To[1].Address != carol || len(m.Cc) != 1 || m.Cc[0].Address != bob {
		t.Fatalf("to %+v cc %+v", m.To, m.Cc)
	}
	if bytes.Contains(raw, []byte("Bob <")) {
		t.Fatal("the petname leaked into the header")
	}
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if ct := ent.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" ||
		ent.Header.Get("Content-Transfer-Encoding") != "quoted-printable" || ent.Header.Get("Mime-Version") != "1.0" {
		t.Fatalf("MIME header %v", ent.Header)
	}
	body, _ := io.ReadAll(ent.Body)
	if string(body) != strings.ReplaceAll(text, "\n", "\r\n") {
		t.Fatalf("body %q", body)
	}
	for _, line := range bytes.Split(raw, []byte("\r\n")) {
		if len(line) > 998 || bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("bad line %q", line)
		}
	}
	if refs := ent.Header.Get("References"); refs != "<orig@tangle>" {
		t.Fatalf("References %q", refs)
	}

	// The outbox holds it, each recipient once.
	items, err := e.store.OutboxItems(ctxT(t))
	if err != nil || len(items) != 1 || int64(items[0].ID) != got.OutboxID {
		t.Fatalf("outbox %+v %v", items, err)
	}
	var rcpts []string
	for _, r := range items[0].Rcpts {
		rcpts = append(rcpts, r.Rcpt)
	}
	want := []string{bob, carol}
	slices.Sort(want)
	if !slices.Equal(rcpts, want) {
		t.Fatalf("recipients %v, want %v", rcpts, want)
	}

	var ob struct {
		Items []api.OutboxItem `json:"items"`
	}
	e.call("GET", "/api/outbox", nil).mustCode(t, 200).decode(t, &ob)
	if len(ob.Items) != 1 || ob.Items[0].Subject != "Grüße aus Köln" || len(ob.Items[0].Recipients) != 2 ||
		ob.Items[0].Recipients[0].State != "pending" || ob.Items[0].Created.IsZero() {
		t.Fatalf("outbox %+v", ob)
	}
	// With the Sent copy moved away, the subject comes from the outbox item's bytes.
	e.call("DELETE", fmt.Sprintf("/api/folders/%d/messages/%d", got.Folder, got.UID), nil).mustCode(t, 204)
	e.call("GET", "/api/outbox", nil).mustCode(t, 200).decode(t, &ob)
	if len(ob.Items) != 1 || ob.Items[0].Subject != "Grüße aus Köln" {
		t.Fatalf("outbox after moving the Sent copy %+v", ob)
	}
}

func TestSendSimple(t *testing.T) {
	e := newEnv(t)
	to := newAddress(t)
	var got sendAnswer
	e.call("POST", "/api/messages", map[string]any{"to": []string{to}, "text": "short\nlines\n"}).mustCode(t, 202).decode(t, &got)
	raw, err := e.store.Raw(ctxT(t), store.MailboxID(got.Folder), got.UID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("Content-Transfer-Encoding: 7bit\r\n")) || !bytes.HasSuffix(raw, []byte("\r\n\r\nshort\r\nlines\r\n")) ||
		bytes.Contains(raw, []byte("Subject:")) || bytes.Contains(raw, []byte("In-Reply-To")) {
		t.Fatalf("raw %q", raw)
	}
	m, _ := e.store.Message(ctxT(t), store.MailboxID(got.Folder), got.UID)
	if !m.Flags.Has(`\Seen`) {
		t.Fatal("the Sent copy is not \\Seen")
	}
}

func TestSendBadInput(t *testing.T) {
	e := newEnv(t)
	ok := newAddress(t)
	many := make([]string, maxRecipients+1)
	for i := range many {
		many[i] = ok
	}
	cases := []struct {
		name   string
		body   any
		code   int
		errHas string
	}{
		{"no recipients", map[string]any{"text": "x"}, 400, `"to"`},
		{"empty to", map[string]any{"to": []string{}, "text": "x"}, 400, `"to"`},
		{"empty entry", map[string]any{"to": []string{" "}}, 400, "empty"},
		{"unknown petname", map[string]any{"to": []string{"nobody"}}, 400, `"nobody" is neither a contact's petname nor a tangle address`},
		{"bad address", map[string]any{"to": []string{"tm1qqqq@tangle"}}, 400, "not a valid tangle address"},
		{"bad bare address", map[string]any{"to": []string{"tm1qqqq"}}, 400, "not a valid tangle address"},
		{"other domain", map[string]any{"to": []string{"bob@example.com"}}, 400, "not a tangle address"},
		{"bad cc", map[string]any{"to": []string{ok}, "cc": []string{"x@y"}}, 400, `field "cc"`},
		{"too many", map[string]any{"to": many}, 400, "too many recipients"},
		{"subject with newline", map[string]any{"to": []string{ok}, "subject": "a\r\nBcc: x@tangle"}, 400, "one line"},
		{"subject with control", map[string]any{"to": []string{ok}, "subject": "a\x00b"}, 400, "control character"},
		{"long subject", map[string]any{"to": []string{ok}, "subject": strings.Repeat("s", maxSubject+1)}, 400, "too long"},
		{"text with control", map[string]any{"to": []string{ok}, "text": "a\x1bb"}, 400, "control character"},
		{"bad in_reply_to", map[string]any{"to": []string{ok}, "in_reply_to": "no at sign"}, 400, "in_reply_to"},
		{"in_reply_to with newline", map[string]any{"to": []string{ok}, "in_reply_to": "<a@b>\r\nX: y"}, 400, "in_reply_to"},
		{"bcc is not an address", map[string]any{"to": []string{ok}, "bcc": []string{"nobody"}}, 400, `field "bcc"`},
		{"attachments is unknown", map[string]any{"to": []string{ok}, "attachments": []string{"x"}}, 400, `unknown field "attachments"`},
		{"to is a string", map[string]any{"to": ok}, 400, `"to" must be an array`},
		{"too large", `{"to": ["` + ok + `"], "text": "` + strings.Repeat("x", maxBody) + `"}`, 413, "larger than"},
		{"truncated JSON", `{"to": [`, 400, "ends too early"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.call("POST", "/api/messages", c.body).mustCode(t, c.code)
			r.mustErr(t, c.errHas)
		})
	}
	if items, _ := e.store.OutboxItems(ctxT(t)); len(items) != 0 {
		t.Fatalf("bad requests queued %d messages", len(items))
	}
}

func TestContacts(t *testing.T) {
	e := newEnv(t)
	bob, carol := newAddress(t), newAddress(t)
	upper := strings.ToUpper(strings.TrimSuffix(carol, "@tangle"))
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		code   int
		errHas string
	}{
		{"add", "POST", "/api/contacts", map[string]string{"petname": "bob", "address": bob}, 201, ""},
		{"add canonicalizes", "POST", "/api/contacts", map[string]string{"petname": "Carol Smith", "address": upper}, 201, ""},
		{"taken", "POST", "/api/contacts", map[string]string{"petname": "BOB", "address": carol}, 409, "already taken"},
		{"bad address", "POST", "/api/contacts", map[string]string{"petname": "x", "address": "tm1nope"}, 400, "not a valid tangle address"},
		{"other domain", "POST", "/api/contacts", map[string]string{"petname": "x", "address": "x@example.com"}, 400, "not a valid tangle address"},
		{"missing petname", "POST", "/api/contacts", map[string]string{"address": bob}, 400, `"petname" is missing`},
		{"missing address", "POST", "/api/contacts", map[string]string{"petname": "x"}, 400, `"address" is missing`},
		{"petname with @", "POST", "/api/contacts", map[string]string{"petname": "a@b", "address": bob}, 400, "petname"},
		{"petname padded", "POST", "/api/contacts", map[string]string{"petname": " x", "address": bob}, 400, "petname"},
		{"petname newline", "POST", "/api/contacts", map[string]string{"petname": "x\ny", "address": bob}, 400, "petname"},
		{"petname is an address", "POST", "/api/contacts", map[string]string{"petname": strings.TrimSuffix(bob, "@tangle"), "address": bob}, 400, "must not be an address"},
		{"unknown field", "POST", "/api/contacts", map[string]string{"petname": "x", "address": bob, "note": "n"}, 400, `unknown field "note"`},
		{"remove unknown", "DELETE", "/api/contacts/nobody", nil, 404, "no contact"},
		{"remove any case", "DELETE", "/api/contacts/" + url.PathEscape("CAROL smith"), nil, 204, ""},
		{"removed", "DELETE", "/api/contacts/" + url.PathEscape("Carol Smith"), nil, 404, "no contact"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.call(c.method, c.path, c.body).mustCode(t, c.code)
			switch {
			case c.code == 201:
				var got api.Contact
				r.decode(t, &got)
				if got.Address != canonicalAddress(got.Address) || !strings.HasSuffix(got.Address, "@tangle") {
					t.Fatalf("contact %+v", got)
				}
			case c.code >= 400:
				r.mustErr(t, c.errHas)
			}
		})
	}
	e.call("POST", "/api/contacts", api.Contact{Petname: "alice", Address: carol}).mustCode(t, 201)
	var got struct {
		Contacts []api.Contact `json:"contacts"`
	}
	e.call("GET", "/api/contacts", nil).mustCode(t, 200).decode(t, &got)
	want := []api.Contact{{Petname: "alice", Address: carol}, {Petname: "bob", Address: bob}}
	if !slices.Equal(got.Contacts, want) {
		t.Fatalf("contacts %+v, want %+v", got.Contacts, want)
	}
}

// TestBodyLimitReachesHandlers checks that every JSON endpoint refuses an oversized body with 413.
func TestBodyLimitReachesHandlers(t *testing.T) {
	e := newEnv(t)
	big := `{"x": "` + strings.Repeat("a", maxBody+10) + `"}`
	for _, p := range []string{"/api/contacts", "/api/messages", "/api/folders/1/messages/1/flags",
		"/api/folders/1/messages/1/move", "/api/conversations"} {
		if r := e.call("POST", p, big); r.code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: status %d: %s", p, r.code, r.body)
		}
	}
}

// TestMessageE2EMark: a mail the node decrypted with the user's OpenPGP key (its X-Tanglemail-E2E field,
// protocol.md §16.2), or a Sent copy marked $E2E, says so in the message's detail; other mail does not.
func TestMessageE2EMark(t *testing.T) {
	e := newEnv(t)
	inbox := e.folder(store.RoleInbox)
	for _, c := range []struct{ field, e2e, sig string }{
		{"X-Tanglemail-E2E: openpgp; key=0123ABCD; signature=good; signer=4567EF\r\n", "openpgp", "good"},
		{"X-Tanglemail-E2E: openpgp; key=0123ABCD; signature=none\r\n", "openpgp", "none"},
		{"X-Tanglemail-E2E: openpgp; key=0123ABCD; signature=weird\r\n", "openpgp", "unknown-key"},
		{"X-Tanglemail-E2E: smime\r\n", "", ""},
		{"", "", ""},
	} {
		raw := c.field + "From: bob@example.net\r\nTo: alice@gw.test\r\nSubject: s\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
		a, err := e.store.Append(ctxT(t), store.NewMessage{MailboxID: inbox, Raw: []byte(raw)})
		if err != nil {
			t.Fatal(err)
		}
		var d api.MessageDetail
		e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d", inbox, a.UID), nil).mustCode(t, 200).decode(t, &d)
		if d.E2E != c.e2e || d.E2ESignature != c.sig || strings.TrimSpace(d.Text) != "hi" {
			t.Errorf("%q: e2e %q signature %q text %q", c.field, d.E2E, d.E2ESignature, d.Text)
		}
	}
	// A Sent copy the outbox marked $E2E (encrypted for its Internet recipients before it left) says
	// "sent"; an unmarked one says nothing.
	sent := e.folder(store.RoleSent)
	for _, marked := range []bool{true, false} {
		var fl store.Flags
		if marked {
			fl.Keywords = []string{store.E2EKeyword}
		}
		raw := "From: alice@gw.test\r\nTo: bob@example.net\r\nSubject: s\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
		a, err := e.store.Append(ctxT(t), store.NewMessage{MailboxID: sent, Raw: []byte(raw), Flags: fl})
		if err != nil {
			t.Fatal(err)
		}
		var d api.MessageDetail
		e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d", sent, a.UID), nil).mustCode(t, 200).decode(t, &d)
		if want := map[bool]string{true: "openpgp/sent", false: "/"}[marked]; d.E2E+"/"+d.E2ESignature != want {
			t.Errorf("Sent copy, marked %v: e2e %q signature %q, want %s", marked, d.E2E, d.E2ESignature, want)
		}
	}
}

// TestSendInternetRecipients: with a relay gateway, compose accepts Internet addresses (protocol.md
// §15.4): the tangle recipient gets the message, the gateway a relay message naming only the Internet
// recipients (Bcc among them, but no Bcc field); without a gateway the same request is refused and
// nothing is queued.
func TestSendInternetRecipients(t *testing.T) {
	body := map[string]any{"to": nil, "cc": []string{"carol@example.org"}, "bcc": []string{"Dave@Example.net"},
		"subject": "out", "text": "to the Internet\n"}

	plain := newEnv(t)
	body["to"] = []string{newAddress(t)}
	plain.call("POST", "/api/messages", body).mustCode(t, 400).mustErr(t, "not a tangle address")
	if items, _ := plain.store.OutboxItems(ctxT(t)); len(items) != 0 {
		t.Fatalf("refused request queued %d items", len(items))
	}

	gw := newAddress(t)
	e := newEnv(t, func(c *envConfig) { c.tune = func(s *Server) { s.relay = gw } })
	tangleRcpt := newAddress(t)
	body["to"] = []string{tangleRcpt}
	var got sendAnswer
	e.call("POST", "/api/messages", body).mustCode(t, 202).decode(t, &got)
	items, err := e.store.OutboxItems(ctxT(t))
	if err != nil || len(items) != 2 {
		t.Fatalf("outbox: %d items, %v; want the message and the relay message", len(items), err)
	}
	for _, it := range items {
		raw, err := e.store.OutboxRaw(ctxT(t), it.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(it.Rcpts) != 1 {
			t.Fatalf("item %d has %d recipients", it.ID, len(it.Rcpts))
		}
		switch it.Rcpts[0].Rcpt {
		case tangleRcpt:
			if mail.IsRelay(raw) || !bytes.Contains(raw, []byte("carol@example.org")) {
				t.Errorf("the tangle recipient's copy: %q", raw)
			}
		case gw:
			rcpts, msg, err := mail.ParseRelay(raw)
			if err != nil {
				t.Fatalf("relay message: %v", err)
			}
			if !slices.Equal(rcpts, []string{"carol@example.org", "Dave@Example.net"}) {
				t.Errorf("relay recipients %q", rcpts)
			}
			if mail.HasField(msg, "Bcc") || !bytes.Contains(msg, []byte("to the Internet")) {
				t.Errorf("relayed message %q", msg)
			}
		default:
			t.Errorf("item for %q", it.Rcpts[0].Rcpt)
		}
	}
	// The same request again is a new message (a new Date and Message-ID), but a bad Internet address
	// is still refused.
	body["cc"] = []string{"not an address@"}
	e.call("POST", "/api/messages", body).mustCode(t, 400).mustErr(t, `field "cc"`)
}
