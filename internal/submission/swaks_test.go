package submission

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/mail"
)

// TestSwaks drives the server with swaks, an independent SMTP client (Debian package swaks).
func TestSwaks(t *testing.T) {
	bin, err := exec.LookPath("swaks")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("swaks is not installed, and CI must run this test: .ci/run installs it")
		}
		t.Skip("swaks is not installed (apt-get install swaks)")
	}
	be := &memBackend{}
	_, addr := startServer(t, be, testOptions(t))
	host, port, _ := net.SplitHostPort(addr)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		base := []string{"--server", host, "--port", port, "--ehlo", "client.test", "--timeout", "20"}
		out, err := exec.CommandContext(ctx, bin, append(base, args...)...).CombinedOutput()
		return string(out), err
	}

	t.Run("PLAIN, two recipients and a Bcc", func(t *testing.T) {
		out, err := run("--auth", "PLAIN", "--auth-user", own, "--auth-password", password,
			"--from", own, "--to", rcpt1+","+rcpt2,
			"--add-header", "Bcc: <"+rcpt2+">", "--header", "Subject: via swaks", "--body", "Hello from swaks.")
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		if !strings.Contains(out, "250 2.0.0 OK: queued as q1") {
			t.Errorf("no queue id in:\n%s", out)
		}
		s := be.only(t)
		if len(s.Rcpts) != 2 || s.Rcpts[0].Mail() != rcpt1 || s.Rcpts[1].Mail() != rcpt2 {
			t.Errorf("recipients %v", s.Rcpts)
		}
		m, err := mail.Parse(s.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "via swaks" || mail.HasField(s.Raw, "Bcc") || !mail.HasField(s.SentCopy, "Bcc") ||
			!bytes.Contains(s.Raw, []byte("Hello from swaks.")) {
			t.Errorf("delivered:\n%s\nsent copy:\n%s", s.Raw, s.SentCopy)
		}
	})
	t.Run("LOGIN", func(t *testing.T) {
		out, err := run("--auth", "LOGIN", "--auth-user", own, "--auth-password", password,
			"--from", own, "--to", rcpt1)
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		out, err := run("--auth", "PLAIN", "--auth-user", own, "--auth-password", "wrong",
			"--from", own, "--to", rcpt1)
		if err == nil || !strings.Contains(out, "535 5.7.8") {
			t.Errorf("swaks: %v\n%s", err, out)
		}
	})
	t.Run("not a tangle address", func(t *testing.T) {
		out, err := run("--auth", "PLAIN", "--auth-user", own, "--auth-password", password,
			"--from", own, "--to", "bob@example.com")
		if err == nil || !strings.Contains(out, "550 5.1.1 bob@example.com is not a tangle address") {
			t.Errorf("swaks: %v\n%s", err, out)
		}
	})
	if n := len(be.all()); n != 2 {
		t.Errorf("%d submissions, want 2", n)
	}
}
