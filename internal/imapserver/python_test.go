package imapserver

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// pythonClient drives the server with Python's imaplib (a client we did not write): login, list,
// select, search, fetch, store, append, status, logout. It prints what it saw as JSON.
const pythonClient = `
import imaplib, json, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}
m = imaplib.IMAP4(host, port)
out["caps"] = list(m.capabilities)
out["login"] = m.login(user, pw)[0]
typ, data = m.list()
out["list"] = [d.decode() for d in data]
typ, data = m.select("INBOX")
out["exists"] = int(data[0])
typ, data = m.search(None, "FROM", '"alice"')
out["search_from"] = data[0].decode()
m.literal = "Grüße".encode()  # imaplib sends it as a literal after the last argument
typ, data = m.search("UTF-8", "BODY")
out["search_body"] = data[0].decode()
typ, data = m.fetch("1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
out["fetch_headers"] = [d[1].decode().strip() for d in data if isinstance(d, tuple)]
typ, data = m.fetch("1", "(BODY[])")
out["body"] = data[0][1].decode()
typ, data = m.fetch("1", "(FLAGS)")
out["flags_after_body"] = data[0].decode()
typ, data = m.store("2", "+FLAGS", "(\\Flagged)")
out["store"] = [d.decode() for d in data]
typ, data = m.uid("SEARCH", None, "FLAGGED")
out["uid_search_flagged"] = data[0].decode()
msg = b"From: py@example.org\r\nSubject: from python\r\n\r\nappended by imaplib\r\n"
typ, data = m.append("INBOX", "(\\Seen)", None, msg)
out["append"] = data[0].decode()
typ, data = m.noop()
typ, data = m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT)")
out["status"] = data[0].decode()
m.close()
out["logout"] = m.logout()[0]
print(json.dumps(out))
`

func TestPythonImaplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", plainMsg("hello from alice", "first body\r\n"))
	deliver(t, ts.st, "INBOX", []byte("From: bob@example.org\r\nSubject: second\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\nVmllbGUgR3LDvMOfZSE=\r\n"))

	script := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(script, []byte(pythonClient), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(ts.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, script, host, port, testUser, testPass)
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8")
	outb, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python: %v\n%s", err, stderr)
	}
	var out struct {
		Caps                                  []string
		Login, Logout, Append, Status         string
		List, FetchHeaders, Store             []string
		Exists                                int
		SearchFrom, SearchBody, UIDSearchFlag string
		Body, FlagsAfterBody                  string
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(outb, &raw); err != nil {
		t.Fatalf("output %s: %v", outb, err)
	}
	get := func(k string, v any) {
		if err := json.Unmarshal(raw[k], v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	get("caps", &out.Caps)
	get("login", &out.Login)
	get("list", &out.List)
	get("exists", &out.Exists)
	get("search_from", &out.SearchFrom)
	get("search_body", &out.SearchBody)
	get("fetch_headers", &out.FetchHeaders)
	get("body", &out.Body)
	get("flags_after_body", &out.FlagsAfterBody)
	get("store", &out.Store)
	get("uid_search_flagged", &out.UIDSearchFlag)
	get("append", &out.Append)
	get("status", &out.Status)
	get("logout", &out.Logout)
	t.Logf("imaplib saw: %s", outb)

	check := func(what string, ok bool) {
		if !ok {
			t.Errorf("imaplib: %s", what)
		}
	}
	check("login OK", out.Login == "OK")
	check("LIST has Sent with \\Sent", has(out.List, `\Sent`, `"Sent"`))
	check("EXISTS 2", out.Exists == 2)
	check("SEARCH FROM alice = 1", out.SearchFrom == "1")
	check("SEARCH BODY Grüße (base64 UTF-8) = 2", out.SearchBody == "2")
	check("FETCH headers", len(out.FetchHeaders) == 2 && out.FetchHeaders[0] == "Subject: hello from alice" && out.FetchHeaders[1] == "Subject: second")
	check("BODY[] bytes", out.Body == string(plainMsg("hello from alice", "first body\r\n")))
	check("\\Seen after BODY[]", has([]string{out.FlagsAfterBody}, `\Seen`))
	check("STORE response", has(out.Store, `\Flagged`))
	check("UID SEARCH FLAGGED = 2", out.UIDSearchFlag == "2")
	check("APPEND status", out.Append != "")
	check("STATUS", has([]string{out.Status}, "MESSAGES 3", "UNSEEN 1", "UIDNEXT 4"))
	check("logout BYE", out.Logout == "BYE")
}
