//go:build linux

package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tanglemail/tanglemail/internal/testwait"
)

// openPTY opens a pseudo-terminal pair (posix_openpt, unlockpt, ptsname: TIOCSPTLCK, TIOCGPTN).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestRawTerminal: on a terminal the chat turns off line editing and echo (keeping signals) and puts
// them back; elsewhere it changes nothing. Keys then arrive one by one, and the editor handles them.
func TestRawTerminal(t *testing.T) {
	master, slave := openPTY(t)
	if _, ok := rawTerminal(strings.NewReader("")); ok {
		t.Fatal("a reader that is not a terminal was taken for one")
	}
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	restore, ok := rawTerminal(slave)
	if !ok {
		t.Fatal("the pseudo-terminal was not taken for a terminal")
	}
	raw, _ := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if raw.Lflag&(unix.ICANON|unix.ECHO) != 0 || raw.Lflag&unix.ISIG == 0 {
		t.Fatalf("lflag %#x: want ICANON and ECHO off, ISIG on", raw.Lflag)
	}
	// A key without Enter can be read at once.
	if _, err := master.Write([]byte("h")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := slave.Read(buf)
	if err != nil || string(buf[:n]) != "h" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	restore()
	after, _ := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if after.Lflag != before.Lflag {
		t.Fatalf("lflag after restore %#x, want %#x", after.Lflag, before.Lflag)
	}
}

// TestChatOnTerminal: on a terminal, the chat echoes what is typed itself, sends a typing notice, and
// on Enter replaces the typed line with the message as sent, so it shows once; Ctrl-D leaves.
func TestChatOnTerminal(t *testing.T) {
	f := newFakeAPI(t)
	master, slave := openPTY(t)
	out, errb := &testwait.Buffer{}, &testwait.Buffer{}
	done := make(chan int, 1)
	env := &cmdEnv{stdin: slave, stdout: out, stderr: errb, getenv: func(string) string { return "" }, stop: make(chan struct{})}
	go func() { done <- run(env, []string{"chat", "--data-dir", f.dataDir(), "bob"}) }()
	waitFor(t, "the history", func() bool { return strings.Contains(out.String(), "bob: hi alice\n") })

	master.Write([]byte("hellp\x7fo"))
	base := "/api/conversations/" + directID
	waitFor(t, "a typing notice", func() bool { return len(f.requestsTo("POST "+base+"/typing")) == 1 })
	waitFor(t, "the typed text echoed", func() bool { return strings.HasSuffix(out.String(), clearLine+"hello") })
	master.Write([]byte("\r"))
	waitFor(t, "the message sent", func() bool { return strings.Contains(out.String(), " me: hello\n") })
	if got := out.String(); strings.Count(got, "me: hello\n") != 1 || !strings.Contains(got, clearLine+"hello"+clearLine) {
		t.Fatalf("output %q: want the typed line erased, then the message once", got)
	}
	if n := len(f.requestsTo("POST " + base + "/typing")); n != 1 {
		t.Errorf("%d typing notices for one line typed within 3 s, want 1", n)
	}
	master.Write([]byte{4}) // Ctrl-D
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-D did not end the chat")
	}
}
