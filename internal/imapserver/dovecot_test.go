package imapserver

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dovecot as the reference: startDovecot runs a private instance of Debian's dovecot-imapd on
// 127.0.0.1 from its own config directory (no system service, nothing outside the test's temporary
// directory), and TestDovecotDifferential sends the same commands to it and to this server and
// compares the kind of each tagged answer (OK, NO, BAD) and, where marked, key untagged responses.

// startDovecot starts Dovecot and returns its address. It skips without dovecot, and fails under CI
// (which installs dovecot-imapd, .ci/run).
func startDovecot(t testing.TB, password string) string {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		for _, p := range []string{"/usr/sbin/dovecot", "/sbin/dovecot"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dovecot is not installed, and CI must run this test: add the Debian package dovecot-imapd to PKGS in .ci/run")
		}
		t.Skip("dovecot is not installed (Debian package dovecot-imapd): skipping the comparison with Dovecot")
	}
	// Dovecot's base_dir must be short (Unix socket paths) and readable by its unprivileged users.
	dir, err := os.MkdirTemp("", "tm-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mail := filepath.Join(dir, "mail")
	for _, d := range []string{"run", "state", "mail"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	uid, gid := os.Getuid(), os.Getgid()
	users := ""
	if uid == 0 {
		uid, gid = 65534, 65534 // mail processes do not run as root: nobody
		if err := os.Chown(mail, uid, gid); err != nil {
			t.Fatal(err)
		}
	} else {
		me := strconv.Itoa(uid)
		if u, err := userName(uid); err == nil {
			me = u
		}
		users = fmt.Sprintf("default_internal_user = %s\ndefault_login_user = %s\ndefault_internal_group = %d\n", me, me, gid)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
%[5]sprotocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:%[1]s/mail/%%u
first_valid_uid = 1
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = static
  args = password=%[2]s
}
userdb {
  driver = static
  args = uid=%[3]d gid=%[4]d home=%[1]s/mail/%%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[6]d
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`, dir, password, uid, gid, users, port)
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", confPath)
	out, _ := os.Create(filepath.Join(dir, "out.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("dovecot: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		out.Close()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "* OK") {
				return addr
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "out.log"))
			l, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot exited: %s\n%s", b, l)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			l, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot did not answer on %s within 30 s\n%s", addr, l)
		}
	}
}

func userName(uid int) (string, error) {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[2] == strconv.Itoa(uid) {
			return f[0], nil
		}
	}
	return "", fmt.Errorf("uid %d not found", uid)
}

// imapLine is one command of the differential script.
type imapLine struct {
	cmd string
	// untagged: compare the untagged responses that start with this prefix (after "* "), "" for none.
	untagged string
}

// diffScript exercises every command the server advertises, valid and not. State is built by the
// script itself so that both servers start equal.
var diffScript = []imapLine{
	{"CAPABILITY", ""},
	{"NOOP", ""},
	{`ID ("name" "diff")`, ""},
	{"ID NIL", ""},
	{"ID", ""},
	{"NAMESPACE", "NAMESPACE"},
	{"ENABLE IMAP4rev1", ""},
	{"CREATE Diff", ""},
	{"CREATE Diff/Sub", ""},
	{"CREATE Diff", ""},
	{"CREATE &Jjo", ""},
	{"CREATE &AGE-", ""},
	{"SUBSCRIBE Diff/Sub", ""},
	{`LSUB "" "Diff*"`, "LSUB"},
	{`LSUB "" "Dif%"`, "LSUB"},
	{`LIST "" "Diff*"`, "LIST"},
	{`LIST "" "&Jjo"`, ""},
	{`LIST (SUBSCRIBED) "" "Diff*"`, ""},
	{`LIST "" "Diff*" RETURN (CHILDREN)`, "LIST"},
	{`LIST "" ""`, ""},
	{"RENAME Diff/Sub Diff/Sub2", ""},
	{"RENAME Nope Nope2", ""},
	{"UNSUBSCRIBE Diff/Sub", ""},
	{"STATUS Diff (MESSAGES UIDNEXT UNSEEN)", ""},
	{"STATUS Nope (MESSAGES)", ""},
	{"STATUS Diff (BOGUS)", ""},
	{appendCmd("Diff (\\Seen $Forwarded)", "Subject: one\r\nFrom: a@example.org\r\n\r\nbody one\r\n"), ""},
	{appendCmd("Diff", "Subject: two\r\nFrom: <@route.example:b@example.org>\r\nTo: Team: c@example.org;\r\n\r\nbody two\r\n"), ""},
	{appendCmd("Nope", "Subject: x\r\n\r\ny"), ""},
	{"FETCH 1 FLAGS", ""},
	{"SELECT Nope", ""},
	{"SELECT &Jjo", ""},
	{"EXAMINE Diff", "EXISTS"},
	{"STORE 1 +FLAGS (\\Flagged)", ""},
	{"SELECT Diff", "EXISTS"},
	{"FETCH 1:2 (FLAGS)", "1 FETCH"},
	{"FETCH 1 (FLAGS)", "1 FETCH"},
	{"FETCH 2 (ENVELOPE)", "2 FETCH"},
	{"FETCH 999 FLAGS", ""},
	{"FETCH 0 FLAGS", ""},
	{"FETCH 1 (BOGUS)", ""},
	{"FETCH 1 (BODY.PEEK[1]<0.4> BINARY.PEEK[1]<1.3> BINARY.SIZE[1] RFC822.SIZE)", "1 FETCH"},
	{"FETCH 1 BODYSTRUCTURE", ""},
	{"UID FETCH 999 FLAGS", ""},
	{"UID FETCH 1:* (UID)", ""},
	{"STORE 1 +FLAGS (\\Deleted)", ""},
	{"STORE 2 +FLAGS.SILENT (NewKeyword)", ""},
	{"STORE 999 +FLAGS (\\Seen)", ""},
	{"STORE 1 +FLAGS (\\Bogus)", ""},
	{"SEARCH ALL", "SEARCH"},
	{"SEARCH FROM b@example.org", "SEARCH"},
	{"SEARCH KEYWORD $forwarded", "SEARCH"},
	{"SEARCH DELETED", "SEARCH"},
	{"SEARCH BOGUS", ""},
	{"UID SEARCH RETURN (COUNT) ALL", ""},
	{"SEARCH RETURN (SAVE) ALL", ""},
	{"FETCH $ (UID)", ""},
	{"COPY 1 Diff/Sub2", ""},
	{"COPY 1 Nope", ""},
	{"MOVE 2 Diff/Sub2", ""},
	{"UID EXPUNGE 1", ""},
	{"EXPUNGE", ""},
	{"CHECK", ""},
	{"UNSELECT", ""},
	{"EXAMINE Diff/Sub2", ""},
	{"CLOSE", ""},
	{"CLOSE", ""},
	{"FETCH 1 FLAGS", ""},
	{"DELETE Diff/Sub2", ""},
	{"DELETE Diff", ""},
	{"DELETE Nope", ""},
	{"SELECT INBOX", ""},
	{appendCmd("INBOX", "Subject: three\r\nFrom: \"Carol (C)\" <carol@example.org> (work)\r\n\r\nthree\r\n"), ""},
	{"NOOP", "EXISTS"},
	{"SEARCH FROM carol", "SEARCH"},
	{"SEARCH FROM work", "SEARCH"},
	{"SEARCH TEXT three", "SEARCH"},
	{"SEARCH UNSEEN NOT DELETED", "SEARCH"},
	{"SEARCH 1:* UID 1:*", "SEARCH"},
	{"SEARCH SINCE 1-Jan-2020", "SEARCH"},
	{"SEARCH SINCE 99-Foo-2020", ""},
	{"SEARCH LARGER x", ""},
	{"SEARCH CHARSET BOGUS TEXT x", ""},
	{"FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE)", ""},
	{"FETCH 1 FAST", ""},
	{"FETCH 1 ALL", ""},
	{"FETCH 1 FULL", ""},
	{"FETCH 1 (BODY[HEADER.FIELDS (Subject)])", "1 FETCH"},
	{"FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Subject)])", ""},
	{"FETCH 1 (BODY.PEEK[TEXT]<0.2>)", "1 FETCH"},
	{"FETCH 1 (BODY.PEEK[2])", ""},
	{"FETCH 1 (BODY.PEEK[1.MIME])", ""},
	{"FETCH 1 (BINARY.PEEK[2])", ""},
	{"FETCH 1 (RFC822.HEADER)", ""},
	{"FETCH 1 (RFC822.TEXT)", ""},
	{"FETCH 1:* (FLAGS) (CHANGEDSINCE 1)", ""},
	{"FETCH 1 BODY[", ""},
	{"FETCH 1 BODY[]<x>", ""},
	{"FETCH 1,2,,3 FLAGS", ""},
	{"FETCH * FLAGS", ""},
	{"UID FETCH 0 FLAGS", ""},
	{"UID FETCH 4294967295 FLAGS", ""},
	{"STORE 1 FLAGS ()", ""},
	{"STORE 1 -FLAGS.SILENT (\\Seen)", ""},
	{"STORE 1 +FLAGS \\Seen", ""},
	{"STORE 1 BOGUS (\\Seen)", ""},
	{"UID STORE 1:* +FLAGS (a b)", ""},
	{"COPY 1 INBOX", ""},
	{"COPY 1", ""},
	{"MOVE 1 Nope", ""},
	{"UID MOVE 999 INBOX", ""},
	{"EXPUNGE 1", ""},
	{"UID EXPUNGE", ""},
	{"STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE)", ""},
	{"STATUS INBOX ()", ""},
	{"STATUS INBOX", ""},
	{"ENABLE", ""},
	{"ENABLE BOGUS", ""},
	{"ENABLE CONDSTORE", ""},
	{"CREATE INBOX", ""},
	{"CREATE inbox/child", ""},
	{"DELETE INBOX", ""},
	{"RENAME INBOX Old", ""},
	{"RENAME Old INBOX", ""},
	{"CREATE \"\"", ""},
	{"CREATE a//b", ""},
	{"SUBSCRIBE Nope", ""},
	{"UNSUBSCRIBE Nope", ""},
	{`LIST "" "*" RETURN (BOGUS)`, ""},
	{`LIST (BOGUS) "" "*"`, ""},
	{`LIST "" ("INBOX" "Old")`, ""},
	{`LIST "INBOX" "%"`, ""},
	{"LIST", ""},
	{"NAMESPACE x", ""},
	{"NOOP x", ""},
	{"CAPABILITY x", ""},
	{"UNSELECT", ""},
	{"UNSELECT", ""},
	{"EXPUNGE", ""},
	{"SEARCH ALL", ""},
	{"XYZZY", ""},
	{"UID XYZZY", ""},
	{"SEARCH ((((((ALL))))))", ""},
	{"LOGIN a b", ""},
}

// appendCmd is APPEND with a non-synchronising literal (LITERAL+, both servers have it).
func appendCmd(args, msg string) string {
	return fmt.Sprintf("APPEND %s {%d+}\r\n%s", args, len(msg), msg)
}

// knownDifferences are answers of this server that differ from Dovecot's (2.3), by command, with the
// reason. The test logs them; any other difference fails it.
var knownDifferences = map[string]string{
	"SEARCH FROM work": "SEARCH FROM matches the field's text, comments included (RFC 9051 §6.4.4: the " +
		"field contains the string); Dovecot matches the addresses only",
	"FETCH 1 (BODY[HEADER.FIELDS (Subject)])": "field names are echoed as the client wrote them (go-imap), " +
		"Dovecot upper-cases them; and \\Recent",
	"FETCH 1:* (FLAGS) (CHANGEDSINCE 1)": "CONDSTORE is not offered (go-imap cannot parse it); Dovecot has it",
	"EXPUNGE 1":                          "EXPUNGE takes no arguments (RFC 9051 §6.4.3): BAD; Dovecot ignores them",
	"NAMESPACE x":                        "NAMESPACE takes no arguments: BAD; Dovecot ignores them",
	"NOOP x":                             "NOOP takes no arguments: BAD; Dovecot ignores them",
	"CAPABILITY x":                       "CAPABILITY takes no arguments: BAD; Dovecot ignores them",
	"RENAME INBOX Old": "RENAME INBOX moves INBOX's messages to the new mailbox (RFC 3501 §6.3.5, RFC 9051 " +
		"§6.3.6); Dovecot does not support it",
	"SUBSCRIBE Nope": "a name that is not a mailbox may be subscribed (RFC 9051 §6.3.7); Dovecot refuses",
	"STORE 1 +FLAGS (\\Flagged)": "STORE in EXAMINE: ours NO [CANNOT], Dovecot OK \"Store ignored with read-only mailbox\"; " +
		"a client should learn that nothing was stored",
	"FETCH 1:2 (FLAGS)": "\\Recent: not kept (RFC 9051 dropped it), Dovecot still shows it",
	"FETCH 1 (FLAGS)":   "\\Recent: not kept (RFC 9051 dropped it), Dovecot still shows it",
	"FETCH 2 (ENVELOPE)": "the route of <@route:user@domain>: go-imap always writes the address's adl as NIL " +
		"(RFC 9051 allows it), Dovecot writes the route",
	"FETCH 1 (BODY.PEEK[1]<0.4> BINARY.PEEK[1]<1.3> BINARY.SIZE[1] RFC822.SIZE)": "go-imap sends BINARY as literal8 " +
		"(~{n}) always, Dovecot as a plain literal when there is no NUL; both are valid (RFC 3516 §4.2)",
}

func TestDovecotDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const dovecotPass = "dovecot-reference" // static passdb args are split at spaces
	dovecot := startDovecot(t, dovecotPass)
	ts := newTestServer(t)
	ours := dialScript(t, ts.addr, testPass)
	ref := dialScript(t, dovecot, dovecotPass)
	for i, l := range diffScript {
		tag := fmt.Sprintf("d%d", i)
		t.Logf("%s %s", tag, strings.SplitN(l.cmd, "\r\n", 2)[0])
		gotU, got := ours.run(tag, l.cmd)
		wantU, want := ref.run(tag, l.cmd)
		name := strings.SplitN(l.cmd, "\r\n", 2)[0]
		report := t.Errorf
		if why, ok := knownDifferences[name]; ok {
			report = func(format string, args ...any) {
				t.Logf("known difference (%s): "+format, append([]any{why}, args...)...)
			}
		}
		if kind(got) != kind(want) {
			report("%s: ours %q, Dovecot %q", name, got, want)
			continue
		}
		if l.untagged != "" {
			g, w := pick(gotU, l.untagged), pick(wantU, l.untagged)
			if g != w {
				report("%s: untagged %s: ours %q, Dovecot %q", name, l.untagged, g, w)
			}
		}
	}
}

// preauthScript runs before login (tags only; the third unknown command ends both connections).
var preauthScript = []imapLine{
	{"CAPABILITY", ""},
	{"NOOP", ""},
	{"ID NIL", ""},
	{"SELECT INBOX", ""},
	{"LIST \"\" *", ""},
	{"AUTHENTICATE BOGUS", ""},
	{"LOGIN", ""},
	{"XYZZY", ""},
	{"ENABLE IMAP4rev2", ""},
}

func TestDovecotDifferentialNotAuthenticated(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dovecot := startDovecot(t, "dovecot-reference")
	ts := newTestServer(t)
	dial := func(addr string) *scriptConn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sc := &scriptConn{t: t, c: c, br: bufio.NewReader(c)}
		sc.readLine()
		return sc
	}
	ours, ref := dial(ts.addr), dial(dovecot)
	for i, l := range preauthScript {
		tag := fmt.Sprintf("p%d", i)
		_, got := ours.run(tag, l.cmd)
		_, want := ref.run(tag, l.cmd)
		report := t.Errorf
		if why, ok := knownDifferences["preauth "+l.cmd]; ok {
			report = func(format string, args ...any) {
				t.Logf("known difference (%s): "+format, append([]any{why}, args...)...)
			}
		}
		// Dovecot answers the third bad command with BYE, this server with BAD and then BYE.
		if kind(got) == "BYE" || kind(want) == "BYE" {
			if kind(want) == "BYE" && kind(got) == "BAD" {
				_, got = ours.run(tag+"b", "NOOP")
			}
			if kind(got) != kind(want) {
				report("before login, %s: ours %q, Dovecot %q", l.cmd, got, want)
			}
			return
		}
		if kind(got) != kind(want) {
			report("before login, %s: ours %q, Dovecot %q", l.cmd, got, want)
		}
	}
	t.Error("no BYE after the bad commands")
}

func kind(status string) string {
	k, _, _ := strings.Cut(status, " ")
	return k
}

// pick returns the untagged responses that start with prefix, normalised for comparison: spaces
// between parenthesised items and quoting of atoms differ between servers and are dropped.
func pick(lines []string, prefix string) string {
	var out []string
	for _, l := range lines {
		l = strings.TrimPrefix(l, "* ")
		if strings.HasPrefix(l, prefix) {
			l = strings.ReplaceAll(l, ") (", ")(")
			l = strings.ReplaceAll(l, `"`, "")
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

type scriptConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialScript(t *testing.T, addr, password string) *scriptConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sc := &scriptConn{t: t, c: c, br: bufio.NewReader(c)}
	sc.readLine() // greeting
	if _, st := sc.run("l", fmt.Sprintf("LOGIN %s %q", testUser, password)); !strings.HasPrefix(st, "OK") {
		t.Fatalf("login at %s: %s", addr, st)
	}
	return sc
}

func (sc *scriptConn) readLine() string {
	sc.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var b strings.Builder
	for {
		line, err := sc.br.ReadString('\n')
		if err != nil {
			sc.t.Fatalf("read: %v (after %q)", err, b.String()+line)
		}
		b.WriteString(line)
		l := strings.TrimRight(line, "\r\n")
		i := strings.LastIndexByte(l, '{')
		if !strings.HasSuffix(l, "}") || i < 0 {
			break
		}
		n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+"))
		if err != nil {
			break
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(sc.br, buf); err != nil {
			sc.t.Fatalf("read literal: %v", err)
		}
		b.Write(buf)
	}
	return strings.TrimRight(b.String(), "\r\n")
}

func (sc *scriptConn) run(tag, cmd string) (untagged []string, status string) {
	sc.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(sc.c, "%s %s\r\n", tag, cmd); err != nil {
		sc.t.Fatalf("write: %v", err)
	}
	for {
		l := sc.readLine()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		if strings.HasPrefix(l, "* BYE") {
			return untagged, "BYE " + l
		}
		untagged = append(untagged, l)
	}
}
