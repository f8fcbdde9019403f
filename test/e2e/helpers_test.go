package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/nodetest"
	"github.com/tanglemail/tanglemail/internal/smtptest"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/storetest"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// testNode is a running node with what the clients need to reach it.
type testNode struct {
	*node.Node
	name string
	dir  string // data directory
	addr string // <address>@tangle: the IMAP user name and the only MAIL FROM SMTP accepts
}

// certFile is the node's self-signed certificate (PEM), which the clients are told to trust.
func (n *testNode) certFile() string { return filepath.Join(n.dir, node.CertFile) }

func (n *testNode) imapHostPort(t *testing.T) (string, string) { return splitHostPort(t, n.IMAPAddr()) }
func (n *testNode) smtpHostPort(t *testing.T) (string, string) { return splitHostPort(t, n.SMTPAddr()) }

func splitHostPort(t *testing.T, hp string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		t.Fatal(err)
	}
	if host != "127.0.0.1" {
		t.Fatalf("node listens on %s, want 127.0.0.1", hp)
	}
	return host, port
}

// startNodes starts names as nodes of the development network on 127.0.0.1 (mDNS and DHT off), each
// bootstrapping from all earlier ones, and waits until every node is peered with every other.
func startNodes(t *testing.T, names ...string) []*testNode {
	t.Helper()
	ns, dirs := nodetest.StartDevnet(t, names...)
	var nodes []*testNode
	for i, n := range ns {
		nodes = append(nodes, &testNode{Node: n, name: names[i], dir: dirs[i], addr: n.Identity().Address().Mail()})
	}
	return nodes
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testwait.For(t, what, d, cond)
}

// needClient returns the path of a client binary. Missing, it fails the test under CI (which must
// install it: .ci/run's PKGS) and skips it elsewhere.
func needClient(t *testing.T, bin, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed, and CI must run this test: add the Debian package %s to PKGS in .ci/run", bin, pkg)
	}
	t.Skipf("%s is not installed (apt-get install --no-install-recommends %s)", bin, pkg)
	return ""
}

// client runs one mail client command with a deadline, HOME set to a fresh directory (no user
// configuration is read) and stdin from the given text. It returns stdout and stderr combined.
type client struct {
	t       *testing.T
	home    string
	timeout time.Duration
}

func newClient(t *testing.T) *client {
	return &client{t: t, home: t.TempDir(), timeout: 60 * time.Second}
}

func (c *client) run(stdin string, bin string, args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+c.home, "LC_ALL=C.UTF-8", "PYTHONIOENCODING=utf-8", "TMPDIR="+c.home)
	cmd.Dir = c.home
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s did not finish within %v: %w", filepath.Base(bin), c.timeout, err)
	}
	c.t.Logf("%s %s: %v in %v", filepath.Base(bin), firstArg(args), errOrOK(err), time.Since(start).Round(time.Millisecond))
	return out.String(), err
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0] + " …"
}

func errOrOK(err error) any {
	if err == nil {
		return "ok"
	}
	return err
}

// writeFile writes a client's configuration file, 0600 (some clients refuse readable secrets).
func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// stored is a message in a node's mailbox store.
type stored storetest.Message

func (m stored) subject() string { return headerValue(m.Raw, "Subject") }

// headerValue returns the first value of a header field of raw (unfolded, decoded), "" if absent.
func headerValue(raw []byte, name string) string { return store.ParseHeader(raw).Get(name) }

// mailbox lists a mailbox of n's store by role.
func mailbox(t *testing.T, n *testNode, role store.Role) []stored {
	t.Helper()
	var out []stored
	for _, m := range storetest.Mailbox(t, n.Mailboxes(), role) {
		out = append(out, stored(m))
	}
	return out
}

// findSubject returns the message of msgs with the given subject.
func findSubject(msgs []stored, subject string) (stored, bool) {
	for _, m := range msgs {
		if m.subject() == subject {
			return m, true
		}
	}
	return stored{}, false
}

// waitForSubject waits until a message with the given subject is in n's mailbox and returns it.
func waitForSubject(t *testing.T, n *testNode, role store.Role, subject string, d time.Duration) stored {
	t.Helper()
	var m stored
	waitFor(t, fmt.Sprintf("%q in %s's %s", subject, n.name, role), d, func() bool {
		var ok bool
		m, ok = findSubject(mailbox(t, n, role), subject)
		return ok
	})
	return m
}

// waitDelivered waits until the outbox item of n whose message has the given subject has all its
// recipients delivered: the recipient's node sent the automatic receipt and it came back.
func waitDelivered(t *testing.T, n *testNode, subject string, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	var last string
	deadline := time.Now().Add(d)
	for {
		items, err := n.Mailboxes().OutboxItems(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			raw, err := n.Mailboxes().OutboxRaw(ctx, it.ID)
			if err != nil || headerValue(raw, "Subject") != subject {
				continue
			}
			all := len(it.Rcpts) > 0
			var states []string
			for _, r := range it.Rcpts {
				states = append(states, fmt.Sprintf("%s: %s %s", r.Rcpt, r.State, r.LastError))
				all = all && r.State == store.RcptDelivered
			}
			if all {
				return
			}
			last = strings.Join(states, "; ")
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for the receipt of %q at %s (outbox: %s)", d, subject, n.name, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// submitDirect submits a small message from n to rcpt with Go's net/smtp (STARTTLS trusting the
// node's certificate, AUTH PLAIN). Tests use it to set up mail, not as the client under test.
func submitDirect(t *testing.T, n *testNode, rcpt, subject, body string) {
	t.Helper()
	raw := "From: " + n.addr + "\r\nTo: " + rcpt + "\r\nSubject: " + subject + "\r\n\r\n" + body + "\r\n"
	smtptest.Submit(t, n.SMTPAddr(), n.certFile(), n.addr, n.Password(), []string{rcpt}, raw)
}
