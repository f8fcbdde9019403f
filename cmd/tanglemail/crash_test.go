package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/crashtest"
	"github.com/tanglemail/tanglemail/internal/node"
)

// TestMain lets the test binary run as the tanglemail command: crash tests start it as a child process
// with TANGLEMAIL_TEST_RUN_MAIN=1 and kill it (or stop it with SIGTERM, handled as by main).
func TestMain(m *testing.M) {
	if os.Getenv("TANGLEMAIL_TEST_RUN_MAIN") == "1" {
		env := &cmdEnv{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, stop: stopOnSignal()}
		os.Exit(run(env, os.Args[1:]))
	}
	os.Exit(m.Run())
}

var smtpSettings = regexp.MustCompile(`SMTP submission\):\s+server (\S+)\s+port (\d+)`)

// childProc is a tanglemail command running as a child process of a crash test.
type childProc struct{ cmd *exec.Cmd }

// startChildProc runs "tanglemail sub" as a child process on loopback (devnet, no mDNS nor DHT, every
// listener on a free port, bootstrapping from bootstrap) with the data directory dir and the extra
// flags, and returns once ready has returned true for a line of its stdout; it fails t, naming what, if
// that has not happened within 30 s. ready sees the lines in order on another goroutine until it
// returns true: what it records is the caller's to read once startChildProc has returned.
func startChildProc(t *testing.T, what string, ready func(line string) bool, sub, dir, bootstrap string, extra ...string) childProc {
	t.Helper()
	args := append([]string{sub}, extra...)
	args = append(args, "--data-dir", dir, "--network", "tanglemail-dev", "--p2p-listen", "/ip4/127.0.0.1/tcp/0",
		"--mdns=false", "--dht=false", "--api-listen", "127.0.0.1:0", "--smtp-listen", "127.0.0.1:0",
		"--imap-listen", "127.0.0.1:0", "--bootstrap", bootstrap, "--log-level", "error")
	cmd, out := crashtest.Start(t, []string{"TANGLEMAIL_TEST_RUN_MAIN=1"}, args...)
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if !sent && ready(sc.Text()) {
				close(found)
				sent = true
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case <-found:
		return childProc{cmd: cmd}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("child %s did not print %s within 30 s", sub, what)
		return childProc{}
	}
}

func (c childProc) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

// childNode is a tanglemail node running as a child process.
type childNode struct {
	childProc
	smtp string
}

func startChild(t *testing.T, dir string, bootstrap string) *childNode {
	t.Helper()
	var smtp string
	c := startChildProc(t, "its SMTP settings", func(line string) bool {
		m := smtpSettings.FindStringSubmatch(line)
		if m != nil {
			smtp = net.JoinHostPort(m[1], m[2])
		}
		return m != nil
	}, "node", dir, bootstrap)
	return &childNode{childProc: c, smtp: smtp}
}

// bigText is the text of every third message of the crash test: above submission.SpoolThreshold, so
// those are spooled to <datadir>/spool while they are read and filed from the spool file.
var bigText = strings.Repeat(strings.Repeat("spooled ", 9)+"\r\n", 15_000) // 1.06 MiB

// sendOne submits one message (with big, of 1.06 MiB) over STARTTLS + AUTH PLAIN and reports whether the
// server said 250.
func sendOne(addr, password, from, to, msgID string, big bool) bool {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		conn.Close()
		return false
	}
	defer c.Close()
	raw := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: crash test\r\nMessage-ID: <%s>\r\nDate: %s\r\n\r\nmessage %s\r\n",
		from, to, msgID, time.Now().UTC().Format(time.RFC1123Z), msgID)
	if big {
		raw += bigText
	}
	if c.StartTLS(&tls.Config{InsecureSkipVerify: true}) != nil || // the test trusts its own node
		c.Auth(smtp.PlainAuth("", from, password, "127.0.0.1")) != nil ||
		c.Mail(from) != nil || c.Rcpt(to) != nil {
		return false
	}
	w, err := c.Data()
	if err != nil {
		return false
	}
	if _, err := w.Write([]byte(raw)); err != nil {
		return false
	}
	return w.Close() == nil // Close reads the reply to DATA: nil only for 250
}

// The node is killed with SIGKILL at random moments while a client submits mail; after each kill it is
// restarted. Every message acknowledged with 250 must reach the recipient exactly once, and nothing that
// was not submitted may arrive.
func TestCrashSafetySIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs a node process repeatedly")
	}
	ctx := context.Background()
	bobCfg := node.DevnetConfig(t.TempDir())
	bob, err := node.Start(ctx, bobCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	bobAddr := bob.Identity().Address().Mail()

	aliceDir := t.TempDir()
	if _, err := node.CreateIdentity(aliceDir, nil, 8); err != nil {
		t.Fatal(err)
	}
	alicePw, err := node.LoadOrCreatePassword(aliceDir)
	if err != nil {
		t.Fatal(err)
	}
	aliceID, err := node.LoadIdentity(aliceDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	from := aliceID.Address().Mail()
	// Alice is bob's contact, so her large (blob) mail is fetched without asking.
	if err := bob.Mailboxes().AddContact(ctx, "alice", from); err != nil {
		t.Fatal(err)
	}

	// Every third message is large enough to be spooled (1.06 MiB). send is called from one goroutine
	// at a time (crashRounds), so calls and bigAcked need no lock.
	var calls, bigAcked int
	tried, acked := crashRounds(t, 5, "crash", func() (func(id string) bool, func()) {
		child := startChild(t, aliceDir, bob.Network().Addrs()[0])
		return func(id string) bool {
			calls++
			big := calls%3 == 0
			ok := sendOne(child.smtp, alicePw, from, bobAddr, id, big)
			if ok && big {
				bigAcked++
			}
			return ok
		}, child.kill
	})
	t.Logf("%d of the acknowledged messages were spooled", bigAcked)

	// Restart alice for good and wait until every acknowledged message is in bob's INBOX. Spool files
	// the kills left (messages never acknowledged) are gone once the node is up, never delivered.
	spool := filepath.Join(aliceDir, node.SpoolDir)
	left, _ := os.ReadDir(spool)
	child := startChild(t, aliceDir, bob.Network().Addrs()[0])
	defer child.kill()
	if after, err := os.ReadDir(spool); err != nil || len(after) != 0 {
		t.Errorf("spool after the restart: %d files (%d before), %v", len(after), len(left), err)
	}
	t.Logf("%d spool files left by the kills, removed at the restart", len(left))
	waitFiledOnce(t, bob.Mailboxes(), tried, acked)
}
