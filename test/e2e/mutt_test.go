package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/store"
)

// mutt sends non-interactively (mutt -s … rcpt < body) through alice's node: SMTP with STARTTLS
// required, the node's certificate trusted through certificate_file, SASL PLAIN. The mail reaches both
// recipients on their own nodes, and alice's node files the only Sent copy (record is empty).
func TestMuttSend(t *testing.T) {
	mutt := needClient(t, "mutt", "mutt")
	nodes := startNodes(t, "alice", "bob", "carol")
	alice, bob, carol := nodes[0], nodes[1], nodes[2]

	c := newClient(t)
	host, port := alice.smtpHostPort(t)
	muttrc := writeFile(t, filepath.Join(c.home, "muttrc"), fmt.Sprintf(`set from="%s"
set realname="Alice"
set use_from=yes
set envelope_from=yes
set hostname="localhost"
set smtp_url="smtp://%s@%s:%s/"
set smtp_pass="%s"
set smtp_authenticators="plain"
set ssl_starttls=yes
set ssl_force_tls=yes
set certificate_file="%s"
set record=""
set copy=no
set charset="utf-8"
set send_charset="us-ascii:utf-8"
set folder="%s"
set spoolfile="%s"
`, alice.addr, strings.ReplaceAll(alice.addr, "@", "%40"), host, port, alice.Password(), alice.certFile(),
		filepath.Join(c.home, "Mail"), filepath.Join(c.home, "Mail", "inbox")))

	const subject = "mutt over the tangle"
	const body = "Hello Bob and Carol,\nmutt sent this through alice's node.\n"
	out, err := c.run(body, mutt, "-n", "-F", muttrc, "-s", subject, "-c", carol.addr, "--", bob.addr)
	if err != nil {
		t.Fatalf("mutt: %v\n%s", err, out)
	}
	if strings.TrimSpace(out) != "" {
		t.Logf("mutt said:\n%s", out)
	}

	for _, rcpt := range []*testNode{bob, carol} {
		got := waitForSubject(t, rcpt, store.RoleInbox, subject, 40*time.Second)
		raw := strings.ReplaceAll(string(got.Raw), "\r\n", "\n")
		if !strings.Contains(raw, body) {
			t.Errorf("%s's copy lacks the body:\n%s", rcpt.name, got.Raw)
		}
		if from := headerValue(got.Raw, "From"); !strings.Contains(from, alice.addr) || !strings.Contains(from, "Alice") {
			t.Errorf("%s's copy is From %q", rcpt.name, from)
		}
		if cc := headerValue(got.Raw, "Cc"); !strings.Contains(cc, carol.addr) {
			t.Errorf("%s's copy has Cc %q", rcpt.name, cc)
		}
	}
	if sent := mailbox(t, alice, store.RoleSent); len(sent) != 1 || sent[0].subject() != subject {
		t.Errorf("alice's Sent has %d messages, want the one mutt sent", len(sent))
	}
	waitDelivered(t, alice, subject, 30*time.Second)
}
