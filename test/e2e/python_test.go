package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/store"
)

// pythonIdleSend is a user with two mail clients, Python's imaplib idling on the recipient's node and
// smtplib sending from the sender's node. imaplib (3.11) has no idle(): IDLE is written by hand on
// imaplib's connection (send, readline). It prints JSON: how long after the send the untagged EXISTS
// came, and the message's bytes as FETCH BODY[] returns them.
const pythonIdleSend = `
import imaplib, json, re, smtplib, ssl, sys, time
from email.message import EmailMessage

cfg = json.loads(sys.argv[1])
deadline = time.monotonic() + cfg["timeout"]
ctx = ssl.create_default_context(cafile=cfg["rcpt_cert"])

# The recipient's client: STARTTLS (verifying the node's certificate), LOGIN, SELECT, IDLE.
imap = imaplib.IMAP4(cfg["imap_host"], cfg["imap_port"], timeout=cfg["timeout"])
imap.starttls(ssl_context=ctx)
imap.login(cfg["imap_user"], cfg["imap_pass"])
typ, data = imap.select("INBOX")
before = int(data[0])
tag = imap._new_tag()
imap.send(tag + b" IDLE\r\n")
line = imap.readline()
if not line.startswith(b"+"):
    sys.exit("IDLE not accepted: %r" % line)

# The sender's client: STARTTLS, AUTH, send_message.
msg = EmailMessage()
msg["From"] = cfg["from"]
msg["To"] = cfg["to"]
msg["Subject"] = cfg["subject"]
msg.set_content(cfg["body"])
sctx = ssl.create_default_context(cafile=cfg["sender_cert"])
with smtplib.SMTP(cfg["smtp_host"], cfg["smtp_port"], timeout=cfg["timeout"]) as s:
    s.ehlo("python.e2e")
    s.starttls(context=sctx)
    s.ehlo("python.e2e")
    s.login(cfg["from"], cfg["smtp_pass"])
    refused = s.send_message(msg)
    if refused:
        sys.exit("refused: %r" % refused)
sent = time.monotonic()

# Wait for the untagged EXISTS that IDLE pushes when the mail arrives.
exists = None
while exists is None:
    left = deadline - time.monotonic()
    if left <= 0:
        sys.exit("no EXISTS within %ss of sending" % cfg["timeout"])
    imap.sock.settimeout(left)
    line = imap.readline()
    if not line:
        sys.exit("connection closed during IDLE")
    m = re.match(rb"\* (\d+) EXISTS", line)
    if m and int(m.group(1)) > before:
        exists = int(m.group(1))
latency = time.monotonic() - sent
imap.sock.settimeout(cfg["timeout"])
imap.send(b"DONE\r\n")
while True:
    line = imap.readline()
    if line.startswith(tag + b" "):
        if not line.startswith(tag + b" OK"):
            sys.exit("IDLE ended with %r" % line)
        break

typ, data = imap.fetch(str(exists), "(BODY[])")
raw = data[0][1].decode()
imap.logout()
print(json.dumps({"before": before, "exists": exists, "latency": latency, "raw": raw}))
`

// Mail both ways between alice and bob with Python's smtplib and imaplib: each recipient's client is
// idling in INBOX when the other sends, gets the untagged EXISTS pushed within the deadline, and
// fetches the message the sender wrote.
func TestPythonSMTPAndIMAPIdle(t *testing.T) {
	py := needClient(t, "python3", "python3")
	nodes := startNodes(t, "alice", "bob")
	alice, bob := nodes[0], nodes[1]
	script := writeFile(t, filepath.Join(t.TempDir(), "idle_send.py"), pythonIdleSend)

	for _, dir := range []struct{ from, to *testNode }{{bob, alice}, {alice, bob}} {
		from, to := dir.from, dir.to
		t.Run(from.name+" to "+to.name, func(t *testing.T) {
			imapHost, imapPort := to.imapHostPort(t)
			smtpHost, smtpPort := from.smtpHostPort(t)
			subject := "python from " + from.name
			body := "Hello " + to.name + ", smtplib sent this and imaplib was idling."
			cfg, _ := json.Marshal(map[string]any{
				"timeout":   40,
				"imap_host": imapHost, "imap_port": imapPort, "imap_user": to.addr, "imap_pass": to.Password(),
				"rcpt_cert": to.certFile(),
				"smtp_host": smtpHost, "smtp_port": smtpPort, "smtp_pass": from.Password(),
				"sender_cert": from.certFile(),
				"from":        from.addr, "to": to.addr, "subject": subject, "body": body,
			})
			c := newClient(t)
			out, err := c.run("", py, script, string(cfg))
			if err != nil {
				t.Fatalf("python: %v\n%s", err, out)
			}
			var res struct {
				Before, Exists int
				Latency        float64
				Raw            string
			}
			if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil {
				t.Fatalf("python output %q: %v", out, err)
			}
			t.Logf("EXISTS %d (was %d) %.2fs after smtplib's send", res.Exists, res.Before, res.Latency)
			if res.Exists != res.Before+1 {
				t.Errorf("EXISTS %d after %d", res.Exists, res.Before)
			}
			if headerValue([]byte(res.Raw), "Subject") != subject || !strings.Contains(res.Raw, body) ||
				!strings.Contains(headerValue([]byte(res.Raw), "From"), from.addr) {
				t.Errorf("imaplib fetched:\n%s", res.Raw)
			}
			// What imaplib fetched is what the recipient's node stored, byte for byte.
			got := waitForSubject(t, to, store.RoleInbox, subject, time.Second)
			if string(got.Raw) != res.Raw {
				t.Errorf("FETCH BODY[] differs from the stored message:\n%q\n%q", res.Raw, got.Raw)
			}
			waitDelivered(t, from, subject, 30*time.Second)
		})
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
