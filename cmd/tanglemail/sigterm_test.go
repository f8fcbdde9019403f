package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// TestSIGTERMLogsNoWarnings: `tanglemail node` stopped by SIGTERM while it grinds proof of work for a
// mail just submitted (real devnet PoW, a peer connected) exits 0 and logs no ERROR or WARN line
// (issue 16: "context canceled" from the inbox and outbox).
func TestSIGTERMLogsNoWarnings(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a node process")
	}
	bob, err := node.Start(context.Background(), node.DevnetConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	dir := t.TempDir()
	if _, err := node.CreateIdentity(dir, nil, 8); err != nil {
		t.Fatal(err)
	}
	pw, err := node.LoadOrCreatePassword(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := node.LoadIdentity(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "node", "--data-dir", dir, "--network", "tanglemail-dev",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--dht=false",
		"--api-listen", "127.0.0.1:0", "--smtp-listen", "127.0.0.1:0", "--imap-listen", "127.0.0.1:0",
		"--bootstrap", bob.Network().Addrs()[0], "--log-level", "info")
	cmd.Env = append(os.Environ(), "TANGLEMAIL_TEST_RUN_MAIN=1")
	var stderr testwait.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := smtpSettings.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- net.JoinHostPort(m[1], m[2]):
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
		exited <- cmd.Wait()
	}()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	var smtpAddr string
	select {
	case smtpAddr = <-found:
	case err := <-exited:
		t.Fatalf("node exited early: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("node did not print its SMTP settings within 60 s\n%s", stderr.String())
	}
	// Mail in the outbox: the node grinds its proof of work (devnet) when the signal comes.
	from := id.Address().Mail()
	for i := range 3 {
		if !sendOne(smtpAddr, pw, from, bob.Identity().Address().Mail(), fmt.Sprintf("sigterm-%d@test", i), false) {
			t.Fatalf("submission %d refused\n%s", i, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Errorf("node exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("node did not exit within 60 s of SIGTERM\n%s", stderr.String())
	}
	logs := stderr.String()
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			t.Errorf("logged on SIGTERM: %s", line)
		}
	}
	if !strings.Contains(logs, "level=INFO") {
		t.Errorf("no INFO line: is the log captured?\n%s", logs)
	}
}
