package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// chatProc is "tanglemail chat" running in-process, with a pipe as its terminal input.
type chatProc struct {
	out, errb *testwait.Buffer
	stdin     *io.PipeWriter
	stop      chan struct{}
	done      chan int
}

func startChat(t *testing.T, env map[string]string, args ...string) *chatProc {
	t.Helper()
	pr, pw := io.Pipe()
	p := &chatProc{out: &testwait.Buffer{}, errb: &testwait.Buffer{}, stdin: pw, stop: make(chan struct{}), done: make(chan int, 1)}
	cenv := &cmdEnv{stdin: pr, stdout: p.out, stderr: p.errb, getenv: func(k string) string { return env[k] }, stop: p.stop}
	go func() { p.done <- run(cenv, append([]string{"chat"}, args...)) }()
	t.Cleanup(func() {
		pw.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Error("chat did not exit within 10 s of its input ending")
		}
	})
	return p
}

// exit waits for the command's exit code.
func (p *chatProc) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-p.done:
		p.done <- code
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("chat did not exit within 10 s\nstdout:\n%s\nstderr:\n%s", p.out.String(), p.errb.String())
		return -1
	}
}

// waitOut waits until the output contains s.
func (p *chatProc) waitOut(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.out.String(), s) {
		select {
		case code := <-p.done:
			p.done <- code
			t.Fatalf("chat exited (%d) without printing %q\nstdout:\n%s\nstderr:\n%s", code, s, p.out.String(), p.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("chat did not print %q within 10 s\nstdout:\n%s", s, p.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// typeLine writes one line to the chat's input.
func (p *chatProc) typeLine(t *testing.T, line string) {
	t.Helper()
	p.typeText(t, line+"\n")
}

// typeText writes text to the chat's input, as typed.
func (p *chatProc) typeText(t *testing.T, line string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := io.WriteString(p.stdin, line)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("chat did not read the line %q within 10 s", line)
	}
}

// marker pushes a message from bob and waits until it is printed: everything pushed before it has
// been handled.
func (p *chatProc) marker(t *testing.T, f *fakeAPI, conv, text string) {
	t.Helper()
	f.pushEvent("chat", map[string]any{"conversation": conv, "message": api.ChatMessage{ID: "marker-" + text,
		Conversation: conv, UID: 99, Kind: "text", From: api.Member{Address: bobAddr, Name: "bob"}, Text: text, Sent: fakeT0, Seen: true}})
	p.waitOut(t, "bob: "+text+"\n")
}

func TestChatDirect(t *testing.T) {
	f := newFakeAPI(t)
	dir := f.dataDir()
	p := startChat(t, nil, "--data-dir", dir, "bob")
	base := "/api/conversations/" + directID
	now := time.Now()

	// The header and the history, then the conversation is marked read (bob's message was unseen).
	p.waitOut(t, "hi alice\n")
	want := "Chat with bob <" + bobAddr + ">.\n" +
		"Type a message and press Enter to send it; /help lists commands; Ctrl-D leaves.\n" +
		stamp(fakeT0, now) + " me: hello bob  (✓✓ read)\n" +
		stamp(fakeT0.Add(time.Minute), now) + " bob: hi alice\n"
	if got := p.out.String(); got != want {
		t.Fatalf("start:\n got %q\nwant %q", got, want)
	}
	waitFor(t, "the conversation marked read", func() bool { return len(f.requestsTo("POST "+base+"/read")) == 1 })
	reqs := f.requests()
	var seq []string
	for _, r := range reqs {
		seq = append(seq, r.String())
		if r.Auth != "Bearer "+fakePassword {
			t.Errorf("%s: Authorization %q", r, r.Auth)
		}
	}
	wantSeq := []string{"POST /api/conversations", "GET /api/events", "GET " + base + "/messages?limit=20", "POST " + base + "/read"}
	if strings.Join(seq, "\n") != strings.Join(wantSeq, "\n") {
		t.Fatalf("requests:\n%s\nwant (the stream before the history):\n%s", strings.Join(seq, "\n"), strings.Join(wantSeq, "\n"))
	}
	if r := reqs[0]; r.Body != `{"peer":"bob"}` || r.ContentType != "application/json" {
		t.Errorf("open: body %q, type %q", r.Body, r.ContentType)
	}
	if r := reqs[1]; r.Accept != "text/event-stream" || r.Body != "" {
		t.Errorf("events: accept %q", r.Accept)
	}
	if r := reqs[3]; r.Body != "" || r.ContentType != "application/json" {
		t.Errorf("read: body %q, type %q", r.Body, r.ContentType)
	}

	// An incoming message (two lines, with a terminal escape sequence) is printed and marked read.
	f.pushEvent("chat", map[string]any{"conversation": directID, "message": api.ChatMessage{ID: "m3", Conversation: directID, UID: 3,
		Kind: "text", From: api.Member{Address: bobAddr, Name: "bob"}, Text: "line one\nline two \x1b[2J", Sent: fakeT0.Add(2 * time.Minute)}})
	ts := stamp(fakeT0.Add(2*time.Minute), now)
	p.waitOut(t, ts+" bob: line one\n"+strings.Repeat(" ", len(ts)+1)+"line two \uFFFD[2J\n")
	waitFor(t, "the new message marked read", func() bool { return len(f.requestsTo("POST "+base+"/read")) == 2 })

	// Events of other conversations, of no interest, or broken are ignored.
	f.pushEvent("chat", map[string]any{"conversation": groupID, "message": api.ChatMessage{ID: "x1", Conversation: groupID,
		UID: 5, Kind: "text", From: api.Member{Address: carolAddr, Name: "carol"}, Text: "not for this chat", Sent: fakeT0}})
	f.pushEvent("progress", map[string]any{"jobs": []any{}, "waiting_for_peers": false})
	f.push("event: chat\ndata: {broken\n\n")
	f.push(": keep-alive\n\n")
	p.marker(t, f, directID, "marker 1")
	if strings.Contains(p.out.String(), "not for this chat") {
		t.Fatal("printed a message of another conversation")
	}

	// A typed line is sent, and printed once even when the stream brings it too.
	p.typeLine(t, "how are you?")
	p.waitOut(t, " me: how are you?\n")
	sends := f.requestsTo("POST " + base + "/messages")
	if len(sends) != 1 || sends[0].Body != `{"text":"how are you?"}` || sends[0].ContentType != "application/json" {
		t.Fatalf("send requests: %+v", sends)
	}
	var sent api.ChatMessage
	f.mu.Lock()
	sent = f.history[directID][len(f.history[directID])-1]
	f.mu.Unlock()
	f.pushEvent("chat", map[string]any{"conversation": directID, "message": sent})

	// Status changes of own messages are short lines, each printed once.
	sent.Status = "delivered"
	f.pushEvent("receipt", map[string]any{"conversation": directID, "message": sent})
	p.waitOut(t, "      ✓ delivered: “how are you?”\n")
	sent.Status = "read"
	f.pushEvent("receipt", map[string]any{"conversation": directID, "message": sent})
	f.pushEvent("receipt", map[string]any{"conversation": directID, "message": sent})
	p.waitOut(t, "      ✓✓ read: “how are you?”\n")

	// Typing: shown, but not again within a few seconds, and never for the user.
	bob := api.Member{Address: bobAddr, Name: "bob"}
	f.pushEvent("typing", map[string]any{"conversation": directID, "from": bob})
	p.waitOut(t, "      bob is typing…\n")
	f.pushEvent("typing", map[string]any{"conversation": directID, "from": bob})
	f.pushEvent("typing", map[string]any{"conversation": directID, "from": api.Member{Address: aliceAddr}})
	p.marker(t, f, directID, "marker 2")
	out := p.out.String()
	for s, n := range map[string]int{" me: how are you?": 1, "✓✓ read: “how are you?”": 1, "is typing": 1, "me is typing": 0} {
		if c := strings.Count(out, s); c != n {
			t.Errorf("%q printed %d times, want %d:\n%s", s, c, n, out)
		}
	}

	// Commands, blank lines, a leading "//", and a message too long.
	p.typeLine(t, "/help")
	p.waitOut(t, "Commands:\n  /help")
	p.typeLine(t, "/frob")
	p.waitOut(t, "-- no command /frob: /help lists them")
	p.typeLine(t, "   ")
	p.typeLine(t, strings.Repeat("x", chatMaxText+1))
	p.waitOut(t, "-- not sent: the message has 4001 bytes, at most 4000 fit")
	p.typeLine(t, "//slash")
	p.waitOut(t, " me: /slash\n")
	sends = f.requestsTo("POST " + base + "/messages")
	if len(sends) != 2 || sends[1].Body != `{"text":"/slash"}` {
		t.Fatalf("send requests: %+v", sends)
	}
	if n := len(f.requestsTo("POST " + base + "/typing")); n != 0 {
		t.Errorf("%d typing notices sent from a line-mode terminal", n)
	}

	// A send the node refuses says so, and the chat goes on.
	f.mu.Lock()
	f.failNext["POST "+base+"/messages"] = 500
	f.mu.Unlock()
	p.typeLine(t, "lost?")
	p.waitOut(t, "-- not sent: the node answered 500: injected failure 500\n")

	// End of input: exit 0, and the event stream is closed.
	p.stdin.Close()
	if code := p.exit(t); code != 0 {
		t.Fatalf("exit %d: %s", code, p.errb.String())
	}
	waitFor(t, "the event stream to close", func() bool { open, _ := f.openStreams(); return open == 0 })
	if e := p.errb.String(); e != "" {
		t.Errorf("stderr: %q", e)
	}
}

func TestChatQuitAndStop(t *testing.T) {
	f := newFakeAPI(t)
	dir := f.dataDir()

	p := startChat(t, nil, "--data-dir", dir, bobAddr)
	p.waitOut(t, "hi alice")
	p.typeLine(t, "/quit")
	if code := p.exit(t); code != 0 {
		t.Fatalf("/quit: exit %d", code)
	}
	if r := f.requestsTo("POST /api/conversations"); len(r) != 1 || r[0].Body != `{"peer":"`+bobAddr+`"}` {
		t.Fatalf("open by address: %+v", r)
	}

	// SIGINT/SIGTERM close the stop channel: the chat ends at once, input still open.
	p = startChat(t, nil, "--data-dir", dir, "bob")
	p.waitOut(t, "hi alice")
	close(p.stop)
	if code := p.exit(t); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	waitFor(t, "the event streams to close", func() bool { open, _ := f.openStreams(); return open == 0 })
}

func TestChatReconnects(t *testing.T) {
	f := newFakeAPI(t)
	f.history[directID][0].Status = "delivered"
	dir := f.dataDir()
	p := startChat(t, nil, "--data-dir", dir, "bob")
	p.waitOut(t, " me: hello bob  (✓ delivered)\n")
	waitFor(t, "the event stream", func() bool { open, _ := f.openStreams(); return open == 1 })

	// While the stream is down, bob writes and reads: the chat prints both after reconnecting.
	f.mu.Lock()
	f.history[directID][0].Status = "read"
	f.history[directID] = append(f.history[directID], api.ChatMessage{ID: "m9", Conversation: directID, UID: 50, Kind: "text",
		From: api.Member{Address: bobAddr, Name: "bob"}, Text: "while you were away", Sent: fakeT0})
	f.mu.Unlock()
	select {
	case f.drop <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatal("no stream to drop")
	}
	p.waitOut(t, "-- lost the connection to the node: the node closed the event stream; trying again in 20ms\n")
	p.waitOut(t, "-- connected to the node again\n")
	p.waitOut(t, " bob: while you were away\n")
	p.waitOut(t, "      ✓✓ read: “hello bob”\n")
	if n := len(f.requestsTo("GET /api/conversations/" + directID + "/messages")); n != 2 {
		t.Fatalf("%d history loads, want 2 (start, catch-up)", n)
	}
	p.marker(t, f, directID, "after the reconnection")

	// A client that fell behind gets "resync" (with a data line: an event without one is never
	// dispatched) and reloads.
	f.mu.Lock()
	f.history[directID] = append(f.history[directID], api.ChatMessage{ID: "m10", Conversation: directID, UID: 60, Kind: "text",
		From: api.Member{Address: bobAddr, Name: "bob"}, Text: "lost in a full queue", Sent: fakeT0})
	f.mu.Unlock()
	f.push("event: resync\ndata: {}\n\n")
	p.waitOut(t, " bob: lost in a full queue\n")

	// The node goes away: the chat says how to start it, and finds it again when it is back (on
	// another port: api.json is read afresh).
	f.srv.CloseClientConnections()
	f.srv.Close()
	p.waitOut(t, "does not answer at "+f.srv.URL+" (is it running? start it with `tanglemail --data-dir "+dir+"`)")
	f2 := newFakeAPI(t)
	info, _ := json.Marshal(node.APIInfo{URL: f2.srv.URL, PID: 2})
	if err := os.WriteFile(filepath.Join(dir, node.APIFile), info, 0o600); err != nil {
		t.Fatal(err)
	}
	before := strings.Count(p.out.String(), "connected to the node again")
	waitFor(t, "the reconnection to the new node", func() bool {
		return strings.Count(p.out.String(), "connected to the node again") > before
	})
	p.marker(t, f2, directID, "from the new node")
	p.stdin.Close()
	if code := p.exit(t); code != 0 {
		t.Fatalf("exit %d: %s", code, p.errb.String())
	}
}

// A stream that brings nothing, not even keep-alives, is given up and opened again.
func TestChatIdleStream(t *testing.T) {
	old := chatIdleTimeout
	chatIdleTimeout = time.Second
	t.Cleanup(func() { chatIdleTimeout = old })
	f := newFakeAPI(t)
	p := startChat(t, nil, "--data-dir", f.dataDir(), "bob")
	p.waitOut(t, "-- lost the connection to the node: the node sent nothing for 1s, not even a keep-alive; trying again in 20ms\n")
	p.waitOut(t, "-- connected to the node again\n")
	// Keep-alive comments, more often than the timeout, keep the stream open for several timeouts.
	_, opened := f.openStreams()
	tick := time.NewTicker(chatIdleTimeout / 10)
	defer tick.Stop()
	for range 25 {
		<-tick.C
		f.push(": keep-alive\n")
	}
	if _, now := f.openStreams(); now != opened {
		t.Fatalf("the stream was reopened %d times despite keep-alives:\n%s", now-opened, p.out.String())
	}
	p.stdin.Close()
	if code := p.exit(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestChatGroup(t *testing.T) {
	f := newFakeAPI(t)
	dir := f.dataDir()
	for _, sel := range [][]string{{"--group", "Trip"}, {"--group", "6b"}, {groupID}, {"--group", groupID}} {
		t.Run(strings.Join(sel, " "), func(t *testing.T) {
			code, out, errs := runCLI(t, nil, append([]string{"chat", "--data-dir", dir}, sel...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			now := time.Now()
			want := "Group “Trip” with bob, carol.\n" +
				"Type a message and press Enter to send it; /help lists commands; Ctrl-D leaves.\n" +
				stamp(fakeT0, now) + " * bob added carol\n" +
				stamp(fakeT0, now) + " carol: hi all\n"
			if out != want {
				t.Fatalf("got %q\nwant %q", out, want)
			}
		})
	}
	if n := len(f.requestsTo("POST /api/conversations/" + groupID + "/read")); n != 0 {
		t.Errorf("marked a read conversation read %d times", n)
	}

	// Live events of the group: a member's message, a rename, a typing member without a petname.
	p := startChat(t, nil, "--data-dir", dir, "--group", "trip")
	p.waitOut(t, "carol: hi all\n")
	f.pushEvent("conversation", map[string]any{"conversation": groupID, "info": api.Conversation{ID: groupID, Kind: "group", Name: "Trip 2026",
		Members: []api.Member{{Address: bobAddr, Name: "bob"}, {Address: carolAddr, Name: "carol"}, {Address: aliceAddr, Me: true}}}})
	p.waitOut(t, "-- the group is now called “Trip 2026”\n")
	f.pushEvent("typing", map[string]any{"conversation": groupID, "from": api.Member{Address: "tm1zzzzzzzzzzzzzzzzzzzzzzzzzzzzz9999@tangle"}})
	p.waitOut(t, "      tm1zzzzzzz…9999 is typing…\n")
	p.marker(t, f, groupID, "see you")

	code, out, errs := runCLI(t, nil, "chat", "--data-dir", dir, "--group", "Nope")
	if code != 1 || !strings.Contains(errs, `no group "Nope" (list your conversations with `+"`tanglemail chat`)") {
		t.Fatalf("unknown group: exit %d: %s%s", code, out, errs)
	}
	code, _, errs = runCLI(t, nil, "chat", "--data-dir", dir, "ffffffffffffffffffffffffffffffff")
	if code != 1 || !strings.Contains(errs, "no conversation ffffffffffffffffffffffffffffffff") {
		t.Fatalf("unknown id: exit %d: %s", code, errs)
	}
}

func TestChatListsConversations(t *testing.T) {
	f := newFakeAPI(t)
	code, out, errs := runCLI(t, nil, "chat", "--data-dir", f.dataDir())
	if code != 0 || !strings.Contains(out, "3f000000  bob") || !strings.Contains(out, "1 unread") ||
		!strings.Contains(out, "6b000000  Trip (group of 3)") || !strings.Contains(out, "tanglemail chat --group <id>") {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	if r := f.requests(); len(r) != 1 || r[0].String() != "GET /api/conversations" {
		t.Fatalf("requests %v", r)
	}
}

func TestChatErrors(t *testing.T) {
	f := newFakeAPI(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		dir  func() string
		args []string
		code int
		want []string
	}{
		{"unknown petname", nil, f.dataDir, []string{"zed"}, 1,
			[]string{`cannot chat with "zed": the node answered 404: no contact named zed`, "tanglemail contacts add zed <address>"}},
		{"wrong password", nil, func() string { return fakeDataDir(t, f.srv.URL, "wrong") }, []string{"bob"}, 1,
			[]string{"the node at " + f.srv.URL + " refused the password in ", string(filepath.Separator) + "password"}},
		{"no node", nil, t.TempDir, []string{"bob"}, 1, []string{"no node is running on "}},
		{"too many arguments", nil, f.dataDir, []string{"bob", "hello"}, 2, []string{"type the messages once it runs", "--help"}},
		{"group and peer", nil, f.dataDir, []string{"--group", "Trip", "bob"}, 2, []string{"either --group or"}},
		{"bad history", nil, f.dataDir, []string{"--history", "501", "bob"}, 2, []string{"--history 501"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir()
			code, out, errs := runCLI(t, tc.env, append([]string{"chat", "--data-dir", dir}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s%s", code, tc.code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
		})
	}

	// Connection refused: the message says how to start the node: with --data-dir when it is not the
	// default, as plain "tanglemail" when it is.
	dir := fakeDataDir(t, closedURL(t), fakePassword)
	code, _, errs := runCLI(t, nil, "chat", "--data-dir", dir, "bob")
	if code != 1 || !strings.Contains(errs, "does not answer at http://127.0.0.1:") || !strings.Contains(errs, "start it with `tanglemail --data-dir "+dir+"`") ||
		!strings.Contains(errs, "connection refused") {
		t.Fatalf("connection refused: exit %d: %s", code, errs)
	}
	xdg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(xdg, "tanglemail"), 0o700); err != nil {
		t.Fatal(err)
	}
	src := fakeDataDir(t, closedURL(t), fakePassword)
	for _, name := range []string{node.APIFile, node.PasswordFile} {
		b, _ := os.ReadFile(filepath.Join(src, name))
		if err := os.WriteFile(filepath.Join(xdg, "tanglemail", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errs = runCLI(t, map[string]string{"XDG_DATA_HOME": xdg}, "chat", "bob")
	if code != 1 || !strings.Contains(errs, "start it with `tanglemail`)") {
		t.Fatalf("default data dir: exit %d: %s", code, errs)
	}

	// The event stream refused: the chat ends with the reason.
	f.mu.Lock()
	f.failNext["GET /api/events"] = 401
	f.mu.Unlock()
	code, out, errs := runCLI(t, nil, "chat", "--data-dir", f.dataDir(), "bob")
	if code != 1 || !strings.Contains(errs, "live updates from the node failed: the node at "+f.srv.URL+" refused the password") {
		t.Fatalf("stream 401: exit %d: %s%s", code, out, errs)
	}
}

func TestChatTypingAndStatusLines(t *testing.T) {
	var out bytes.Buffer
	now := fakeT0
	s := &chatSession{out: &out, conv: api.Conversation{ID: directID, Kind: "direct", Name: "bob", Peer: bobAddr},
		me: aliceAddr, printed: map[string]bool{}, own: map[string]*ownMessage{}, typing: map[string]time.Time{},
		now: func() time.Time { return now }}
	bob := api.Member{Address: bobAddr, Name: "bob"}
	s.showTyping(bob)
	now = now.Add(chatTypingEvery - time.Millisecond)
	s.showTyping(bob)
	now = now.Add(time.Millisecond)
	s.showTyping(bob)
	s.showTyping(api.Member{Address: aliceAddr})
	if got := strings.Count(out.String(), "bob is typing…"); got != 2 {
		t.Fatalf("typing shown %d times, want 2:\n%s", got, out.String())
	}
	// A message from bob ends his typing: the next notice shows at once.
	s.printMessage(api.ChatMessage{ID: "a", From: bob, Text: "x", Sent: now})
	s.showTyping(bob)
	if got := strings.Count(out.String(), "bob is typing…"); got != 3 {
		t.Fatalf("typing after a message shown %d times in all, want 3", got)
	}
	out.Reset()
	// The user's membership events have a status too, which is not shown.
	s.printMessage(api.ChatMessage{ID: "ev", Mine: true, Kind: "event", Text: "you created the group “Trip”", Sent: now, Status: "sending"})
	s.updateStatus(api.ChatMessage{ID: "ev", Mine: true, Kind: "event", Text: "you created the group “Trip”", Status: "delivered"})
	if want := stamp(now, now) + " * you created the group “Trip”\n"; out.String() != want {
		t.Fatalf("own event: %q, want %q", out.String(), want)
	}
	out.Reset()
	long := strings.Repeat("é", 40)
	s.updateStatus(api.ChatMessage{ID: "o", Mine: true, Text: long, Status: "failed"})
	if want := "      ✗ not delivered (the bounce in your INBOX says why): “" + strings.Repeat("é", 31) + "…”\n"; out.String() != want {
		t.Fatalf("status line %q, want %q", out.String(), want)
	}
}

func TestCleanLineAndStamp(t *testing.T) {
	for in, want := range map[string]string{
		"plain":               "plain",
		"tab\tok":             "tab\tok",
		"esc\x1b]0;title\x07": "esc\uFFFD]0;title\uFFFD",
		"cr\rover":            "cr\uFFFDover",
		"c1\u009bx":           "c1\uFFFDx",
		"bidi\u202Egnp.exe":   "bidi\uFFFDgnp.exe",
		"nl\nsep\u2028":       "nl sep ",
		"del\x7f":             "del\uFFFD",
		"emoji 😀 and ünïcødé": "emoji 😀 and ünïcødé",
	} {
		if got := cleanLine(in); got != want {
			t.Errorf("cleanLine(%q) = %q, want %q", in, got, want)
		}
	}
	now := time.Date(2026, 11, 24, 23, 0, 0, 0, time.Local)
	for tm, want := range map[time.Time]string{
		time.Date(2026, 11, 24, 9, 5, 0, 0, time.Local): "09:05",
		time.Date(2026, 11, 23, 9, 5, 0, 0, time.Local): "Nov 23 09:05",
		time.Date(2025, 11, 24, 9, 5, 0, 0, time.Local): "2025-11-24 09:05",
		{}: "--:--",
	} {
		if got := stamp(tm, now); got != want {
			t.Errorf("stamp(%v) = %q, want %q", tm, got, want)
		}
	}
}

func TestFlagsAfterArguments(t *testing.T) {
	parse := func(args ...string) (*contactsFlags, []string) {
		fs := flag.NewFlagSet("contacts", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := contactsCommand().flags(fs, func(string) string { return "" }).(*contactsFlags)
		if err := parseFlags(fs, args, func(string) string { return "" }); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return f, fs.Args()
	}
	if f, rest := parse("list", "--json"); !f.json || strings.Join(rest, " ") != "list" {
		t.Fatalf("list --json: %+v %q", f, rest)
	}
	if f, rest := parse("add", "bob", "--data-dir", "/x", "tm1b"); f.dataDir != "/x" || strings.Join(rest, " ") != "add bob tm1b" {
		t.Fatalf("flag between arguments: %+v %q", f, rest)
	}
	if f, rest := parse("remove", "--", "--json"); f.json || strings.Join(rest, " ") != "remove --json" {
		t.Fatalf("-- ends the flags: %+v %q", f, rest)
	}
	if f, rest := parse("--data-dir", "--", "list", "--json"); f.dataDir != "--" || !f.json || strings.Join(rest, " ") != "list" {
		t.Fatalf("-- as a flag's value: %+v %q", f, rest)
	}
	if f, rest := parse("--json", "--", "-x"); !f.json || strings.Join(rest, " ") != "-x" {
		t.Fatalf("-- after a bool flag: %+v %q", f, rest)
	}
}

// TestLineEditor: in edit mode (a terminal without its own line editing) the chat edits the line
// itself; in a pipe only LF ends a line. Both report the line being typed.
func TestLineEditor(t *testing.T) {
	e := &lineEditor{edit: true}
	lines, changed, eof := e.feed([]byte("héllo\x7f\x7fp!\x01"))
	if len(lines) != 0 || !changed || eof || string(e.buf) != "hélp!" {
		t.Fatalf("after editing: lines %v changed %v eof %v buf %q", lines, changed, eof, e.buf)
	}
	lines, _, _ = e.feed([]byte("\r"))
	if len(lines) != 1 || lines[0].text != "hélp!" {
		t.Fatalf("CR ends the line: %+v", lines)
	}
	if _, changed, _ := e.feed([]byte("abc\x15")); !changed || len(e.buf) != 0 {
		t.Fatalf("Ctrl-U: buf %q", e.buf)
	}
	if _, _, eof := e.feed([]byte("\x04")); !eof {
		t.Fatal("Ctrl-D on an empty line must end the input")
	}

	p := &lineEditor{}
	lines, changed, _ = p.feed([]byte("a\x7fb\r\nc"))
	if len(lines) != 1 || lines[0].text != "a\x7fb" || !changed || string(p.buf) != "c" {
		t.Fatalf("pipe: lines %+v changed %v buf %q", lines, changed, p.buf)
	}
}

// TestPromptWriter: output erases the line being typed and draws it again after a complete line.
func TestPromptWriter(t *testing.T) {
	var b strings.Builder
	p := &promptWriter{w: &b}
	p.set("hel")
	io.WriteString(p, "bob: hi\n")
	p.set("")
	if got, want := b.String(), clearLine+"hel"+clearLine+"bob: hi\nhel"+clearLine; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
