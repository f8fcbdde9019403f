package web

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/store"
)

// uploadFile is a file of an upload.
type uploadFile struct {
	name, ctype string
	data        []byte
}

// uploadBody is a multipart/form-data body of POST /api/messages: the JSON message, then the files.
func uploadBody(msg string, files ...uploadFile) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if msg != "" {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="message"`)
		h.Set("Content-Type", "application/json")
		w, _ := mw.CreatePart(h)
		io.WriteString(w, msg)
	}
	for _, f := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="attachment"; filename="%s"`, f.name))
		if f.ctype != "" {
			h.Set("Content-Type", f.ctype)
		}
		w, _ := mw.CreatePart(h)
		w.Write(f.data)
	}
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

// TestSendAttachmentsAndBcc: a multipart/form-data send becomes a multipart/mixed message with the
// text first and each file, intact, as an attachment; Bcc recipients get it, the Sent copy keeps the
// Bcc field and the API shows it, and what the outbox sends has none.
func TestSendAttachmentsAndBcc(t *testing.T) {
	e := newEnv(t)
	bob, carol := newAddress(t), newAddress(t)
	if err := e.store.AddContact(ctxT(t), "carol", carol); err != nil {
		t.Fatal(err)
	}
	bin := make([]byte, 100_000)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	body, ct := uploadBody(`{"to": ["`+bob+`"], "bcc": ["carol"], "subject": "files", "text": "see attached"}`,
		uploadFile{"report.bin", "application/octet-stream", bin},
		uploadFile{`C:\Users\me\Grüße.txt`, "text/plain; charset=utf-8", []byte("hello\nworld\n")})
	var got api.Sent
	e.call("POST", "/api/messages", body, withHeader("Content-Type", ct)).mustCode(t, 202).decode(t, &got)

	raw, err := e.store.Raw(ctxT(t), store.MailboxID(got.Folder), got.UID)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.To) != 1 || m.To[0].Address != bob || len(m.Bcc) != 1 || m.Bcc[0].Address != carol {
		t.Fatalf("to %+v bcc %+v", m.To, m.Bcc)
	}
	if !bytes.Contains(raw, []byte("Content-Type: multipart/mixed")) {
		t.Fatalf("not multipart/mixed:\n%s", raw[:min(len(raw), 800)])
	}
	stripped := mail.StripBcc(raw)
	if bytes.Contains(stripped, []byte("Bcc:")) || bytes.Contains(stripped, []byte(carol)) {
		t.Fatal("the message the recipients get names the Bcc recipient")
	}

	var d api.MessageDetail
	e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d", got.Folder, got.UID), nil).mustCode(t, 200).decode(t, &d)
	if d.Text != "see attached" || len(d.Bcc) != 1 || d.Bcc[0].Name != "carol" || len(d.Attachments) != 2 ||
		d.Attachments[0] != (api.Attachment{Name: "report.bin", Type: "application/octet-stream", Size: int64(len(bin))}) ||
		d.Attachments[1].Name != "Grüße.txt" || d.Attachments[1].Type != "text/plain" {
		t.Fatalf("detail %+v", d)
	}
	r := e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d/attachments/0", got.Folder, got.UID), nil).mustCode(t, 200)
	if !bytes.Equal(r.body, bin) {
		t.Fatalf("attachment 0: %d bytes, not the file sent", len(r.body))
	}
	r = e.call("GET", fmt.Sprintf("/api/folders/%d/messages/%d/attachments/1", got.Folder, got.UID), nil).mustCode(t, 200)
	if string(r.body) != "hello\nworld\n" {
		t.Fatalf("attachment 1: %q", r.body)
	}

	items, err := e.store.OutboxItems(ctxT(t))
	if err != nil || len(items) != 1 || len(items[0].Rcpts) != 2 {
		t.Fatalf("outbox %+v %v", items, err)
	}
}

// TestSendUploadRefused: the checks of multipart/form-data bodies.
func TestSendUploadRefused(t *testing.T) {
	e := newEnv(t)
	to := newAddress(t)
	msg := `{"to": ["` + to + `"], "text": "x"}`
	file := uploadFile{"a.txt", "text/plain", []byte("a")}
	cases := []struct {
		name  string
		msg   string
		files []uploadFile
		opts  []reqOpt
		code  int
		want  string
	}{
		{"no message part", "", []uploadFile{file}, nil, 400, `part "message" is missing`},
		{"bad JSON", `{"to": [`, nil, nil, 400, `the part "message" is not valid JSON`},
		{"no file name", msg, []uploadFile{{"", "text/plain", []byte("a")}}, nil, 400, "file name"},
		{"too many", msg, func() []uploadFile {
			var fs []uploadFile
			for range maxAttachments + 1 {
				fs = append(fs, file)
			}
			return fs
		}(), nil, 400, "too many attachments"},
		{"too large", msg, []uploadFile{{"big", "", make([]byte, maxAttachmentBytes+1)}}, nil, 413, "too large"},
		{"cross-origin", msg, []uploadFile{file}, []reqOpt{withHeader("Origin", "http://evil.example")}, 403, "cross-origin"},
		{"basic without origin", msg, []uploadFile{file}, []reqOpt{func(r *http.Request) { r.SetBasicAuth("x", testPassword) }}, 403, "Origin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, ct := uploadBody(c.msg, c.files...)
			opts := append([]reqOpt{withHeader("Content-Type", ct)}, c.opts...)
			r := e.call("POST", "/api/messages", body, opts...).mustCode(t, c.code)
			if msg := r.errMsg(t); !strings.Contains(msg, c.want) {
				t.Fatalf("error %q, want %q", msg, c.want)
			}
		})
	}
	if items, _ := e.store.OutboxItems(ctxT(t)); len(items) != 0 {
		t.Fatalf("refused uploads queued %d messages", len(items))
	}
	// Elsewhere multipart bodies stay refused.
	body, ct := uploadBody(msg, file)
	e.call("POST", "/api/contacts", body, withHeader("Content-Type", ct)).mustCode(t, 415)
}

// FuzzUpload: readUpload never panics on any multipart/form-data body, answers every refusal with a
// 4xx JSON error, and what it accepts stays within the limits.
func FuzzUpload(f *testing.F) {
	body, ct := uploadBody(`{"to": ["bob"], "bcc": ["carol"], "text": "x"}`,
		uploadFile{"a.txt", "text/plain", []byte("hello")}, uploadFile{`..\..\b.bin`, "", []byte{0, 1, 2}})
	_, params, _ := mime.ParseMediaType(ct)
	f.Add(body, params["boundary"])
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n{}\r\n--b--\r\n"), "b")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"\x00\"\r\n\r\nx\r\n--b--\r\n"), "b")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"attachment\"; filename*=UTF-8''%C3%A9.txt\r\nContent-Type: ;;\r\n\r\nx\r\n--b"), "b")
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		r := httptest.NewRequest("POST", "/api/messages", bytes.NewReader(body))
		r.Header.Set("Content-Type", mime.FormatMediaType("multipart/form-data", map[string]string{"boundary": boundary}))
		w := httptest.NewRecorder()
		r.Body = http.MaxBytesReader(w, r.Body, maxUploadBody)
		_, files, ok := readUpload(w, r)
		if !ok {
			if w.Code < 400 || w.Code >= 500 || !strings.Contains(w.Body.String(), `"error"`) {
				t.Fatalf("refused with %d %q", w.Code, w.Body.String())
			}
			return
		}
		total := 0
		for _, a := range files {
			total += len(a.data)
			if n, msg := attachmentName(a.name); msg != "" || n != a.name || !strings.Contains(a.ctype, "/") {
				t.Fatalf("accepted attachment %q (%s)", a.name, a.ctype)
			}
		}
		if len(files) > maxAttachments || total > maxAttachmentBytes {
			t.Fatalf("accepted %d files of %d bytes", len(files), total)
		}
	})
}
