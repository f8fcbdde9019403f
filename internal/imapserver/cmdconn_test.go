package imapserver

import (
	"net"
	"strings"
	"testing"
	"time"
)

// An overlong command line gets BAD with a reason, nothing of it is run (not even a piece past
// go-imap's 50 KiB), and the connection goes on.
func TestCommandLineTooLong(t *testing.T) {
	ts := newTestServer(t)
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	pad := strings.Repeat("x", 50*1024)
	u, st := r.cmd("NOOP %s\r\nzz1 CREATE Sneaky1 %s zz2 CREATE Sneaky2", pad, pad)
	_ = u
	if !strings.HasPrefix(st, "BAD ") || !strings.Contains(st, "too long") {
		t.Errorf("overlong line: %q", st)
	}
	r.ok("NOOP")
	if u := r.ok(`LIST "" "Sneaky*"`); len(u) != 0 {
		t.Errorf("a piece of the long line ran: %q", u)
	}
	// An overlong line that ends with a non-synchronising literal: the literal is dropped too.
	tag := r.send("APPEND INBOX %s {5+}\r\nzz3 X", pad)
	_, st = r.readUntil(tag)
	if !strings.HasPrefix(st, "BAD ") {
		t.Errorf("overlong APPEND: %q", st)
	}
	r.ok("NOOP")
}

// 10,000 nested parentheses: BAD with a reason, not a server error.
func TestCommandNestedTooDeep(t *testing.T) {
	ts := newTestServer(t)
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	u, st := r.cmd("SEARCH %sALL%s", strings.Repeat("(", 10000), strings.Repeat(")", 10000))
	if !strings.HasPrefix(st, "BAD ") || !strings.Contains(st, "nested") || len(u) != 0 {
		t.Errorf("nested: %q %q", u, st)
	}
	r.ok("SEARCH ((ALL))")
}

// Malformed lines: no tag, no command, junk; BAD with a reason and the connection stays.
func TestCommandMalformed(t *testing.T) {
	ts := newTestServer(t)
	r := ts.rawLogin(t)
	if _, err := r.c.Write([]byte("\r\n(((\r\n")); err != nil {
		t.Fatal(err)
	}
	if line := r.readLine(); !strings.HasPrefix(line, "* BAD ") {
		t.Errorf("line without a tag: %q", line)
	}
	r.expect("BAD", "", "")
	r.expect("BAD", "", "FETCH")
	for _, cmd := range []string{"SELECT", "STATUS INBOX (BOGUS)", "LIST", "STORE 1 +FLAGS", "UID FETCH x y", "APPEND"} {
		if _, st := r.cmd("%s", cmd); !strings.HasPrefix(st, "BAD ") || strings.Contains(st, "SERVERBUG") {
			t.Errorf("%s: %q", cmd, st)
		}
	}
	r.ok("NOOP")
}

// An unknown command before login gets BAD (RFC 9051 §7.1.5), not BYE; after three, BYE (as
// Dovecot's imap-login).
func TestUnknownCommandBeforeLoginIsBAD(t *testing.T) {
	ts := newTestServer(t)
	r := ts.raw(t)
	r.expect("BAD", "", "XYZZY")
	r.expect("BAD", "", "FOO bar")
	r.ok("NOOP")
	tag := r.send("BLAH")
	if line := r.readLine(); !strings.HasPrefix(line, tag+" BAD") {
		t.Errorf("third unknown command: %q", line)
	}
	if line := r.readLine(); !strings.HasPrefix(line, "* BYE") {
		t.Errorf("after three unknown commands: %q", line)
	}
	// After login, unknown commands are BAD and never end the connection.
	r = ts.rawLogin(t)
	for i := 0; i < 5; i++ {
		r.expect("BAD", "", "XYZZY")
	}
	r.ok("NOOP")
}

// ID (RFC 2971 §3.1) in every state.
func TestID(t *testing.T) {
	ts := newTestServer(t)
	r := ts.raw(t)
	u := r.ok(`ID ("name" "Thunderbird" "version" "128.0")`)
	if len(u) != 1 || !strings.HasPrefix(u[0], `* ID ("name" "tanglemail"`) {
		t.Errorf("ID: %q", u)
	}
	r.ok("LOGIN %s %q", testUser, testPass)
	if u := r.ok("ID NIL"); len(u) != 1 || !strings.HasPrefix(u[0], "* ID (") {
		t.Errorf("ID NIL: %q", u)
	}
	r.ok("ID") // as Dovecot: no parameters is ID NIL
	r.expect("BAD", "", "ID bogus")
}

// A mailbox name that is not modified UTF-7 gets NO with a reason, not NO [SERVERBUG].
func TestInvalidMUTF7MailboxName(t *testing.T) {
	ts := newTestServer(t)
	r := ts.rawLogin(t)
	for _, cmd := range []string{"SELECT &Jjo", "EXAMINE \"a&-&AGE-\"", "CREATE &AGEAYQ-", `LIST "" "&Jjo"`,
		`LIST "" ("INBOX" "&AGE-")`, "CREATE \"&2D0-\"", "RENAME INBOX &AGE", "STATUS &- (MESSAGES)"} {
		_, st := r.cmd("%s", cmd)
		if strings.HasPrefix(cmd, "LIST") {
			// A pattern no name can match: OK with nothing, as Dovecot answers.
			if !strings.HasPrefix(st, "OK ") {
				t.Errorf("%s: %q", cmd, st)
			}
			continue
		}
		if strings.HasPrefix(cmd, "STATUS") {
			if strings.Contains(st, "SERVERBUG") {
				t.Errorf("%s: %q", cmd, st)
			}
			continue
		}
		if !strings.HasPrefix(st, "NO ") || !strings.Contains(st, "UTF-7") {
			t.Errorf("%s: %q", cmd, st)
		}
	}
	// Valid names pass: "&-" is "&", "&AOk-" is "é".
	r.ok("CREATE \"a&-b\"")
	r.ok("CREATE Caf&AOk-")
	if u := r.ok(`LIST "" "Caf*"`); !has(u, "Caf&AOk-") {
		t.Errorf("LIST: %q", u)
	}
}

func TestValidMUTF7(t *testing.T) {
	for s, want := range map[string]bool{
		"INBOX": true, "a&-b": true, "Caf&AOk-": true, "&ZeVnLIqe-": true, "&2D3eAA-": true,
		"&Jjo": false, "&AGE-": false, "&AOk-&AOk-": false, "&-&AOk-": true, "&2D0-": false, "&2D3dAA-": true,
		"a\x01": false, "&=-": false, "&AOkA-": false, "é": true, "\xff": false,
	} {
		if got := validMUTF7(s); got != want {
			t.Errorf("validMUTF7(%q) = %v, want %v", s, got, want)
		}
	}
}

// An unknown search key is BAD with its name (go-imap answered NO [SERVERBUG]).
func TestSearchUnknownKey(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", plainMsg("one", "x"))
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	for q, bad := range map[string]string{"BOGUS": "BOGUS", "NOT BOGUS": "BOGUS", "OR ALL (BOGUS)": "BOGUS",
		"RETURN (COUNT) BOGUS": "BOGUS", "SINCE 99-Foo-2020": "99-Foo-2020", "LARGER x": "LARGER", "SUBJECT": "SUBJECT"} {
		if _, st := r.cmd("SEARCH %s", q); !strings.HasPrefix(st, "BAD ") || !strings.Contains(st, bad) {
			t.Errorf("SEARCH %s: %q", q, st)
		}
	}
	for _, q := range []string{"ALL", "1:* NOT DELETED", `HEADER Subject "one two"`, "OR (SEEN) (UID 1,2:*)",
		"RETURN (MIN MAX) SINCE 1-Jan-2020", "CHARSET UTF-8 TEXT x", "$"} {
		r.ok("SEARCH %s", q)
	}
}

// STATUS with an empty item list is BAD (RFC 9051 §6.3.11 status-att-list), as Dovecot answers.
func TestStatusEmptyItems(t *testing.T) {
	ts := newTestServer(t)
	r := ts.rawLogin(t)
	r.expect("BAD", "", "STATUS INBOX ()")
	r.ok("STATUS INBOX (MESSAGES)")
}

// gone tells a closed connection from an open one without losing the client's bytes: a long FETCH
// stops between messages once the client has left.
func TestCmdConnGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cc := newCmdConn(srv)
	if cc.gone() {
		t.Fatal("gone while the client is there")
	}
	client.Write([]byte("a NOOP\r\n"))
	deadline := time.Now().Add(10 * time.Second)
	for cc.r.Buffered() == 0 && time.Now().Before(deadline) {
		if cc.gone() {
			t.Fatal("gone with a command waiting")
		}
	}
	client.Close()
	buf := make([]byte, 64)
	n, _ := cc.Read(buf)
	if string(buf[:n]) != "a NOOP\r\n" {
		t.Errorf("read %q after gone checks", buf[:n])
	}
	for !cc.gone() {
		if time.Now().After(deadline) {
			t.Fatal("not gone 10 s after the client closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every BAD before login counts, as in Dovecot's imap-login: after three, BYE.
func TestBadCommandsBeforeLoginEndConnection(t *testing.T) {
	ts := newTestServer(t)
	r := ts.raw(t)
	r.expect("BAD", "", "SELECT INBOX")
	r.expect("BAD", "", "LOGIN")
	r.expect("BAD", "", "FETCH 1 FLAGS")
	r.send("NOOP")
	if line := r.readLine(); !strings.HasPrefix(line, "* BYE") {
		t.Errorf("after three bad commands: %q", line)
	}
}
