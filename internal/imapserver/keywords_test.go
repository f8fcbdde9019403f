package imapserver

import (
	"strings"
	"testing"
)

// Keywords keep their case ($Forwarded, RFC 5550 §5.1 spells it so), match case-insensitively, and a
// new keyword's FLAGS comes before the FETCH that uses it (RFC 9051 §7.3.5).
func TestKeywordCaseAndFlagsOrder(t *testing.T) {
	ts := newTestServer(t)
	deliver(t, ts.st, "INBOX", plainMsg("one", "x"))
	deliver(t, ts.st, "INBOX", plainMsg("two", "y"))
	r := ts.rawLogin(t)
	r.ok("SELECT INBOX")
	u := r.ok("STORE 1 +FLAGS ($Forwarded)")
	if len(u) != 2 || !strings.HasPrefix(u[0], "* FLAGS (") || !strings.Contains(u[0], "$Forwarded") ||
		!strings.HasPrefix(u[1], "* 1 FETCH") || !strings.Contains(u[1], "$Forwarded") {
		t.Errorf("STORE with a new keyword: %q", u)
	}
	// Another spelling is the same keyword, shown as the mailbox first saw it.
	if u := r.ok("STORE 2 +FLAGS ($FORWARDED)"); len(u) != 1 || !has(u, "* 2 FETCH", "$Forwarded") {
		t.Errorf("STORE in another spelling: %q", u)
	}
	if u := r.ok("SEARCH KEYWORD $forwarded"); !has(u, "* SEARCH 1 2") {
		t.Errorf("SEARCH KEYWORD: %q", u)
	}
	if u := r.ok("FETCH 1:2 FLAGS"); strings.Contains(strings.Join(u, " "), "$forwarded") {
		t.Errorf("FETCH FLAGS: %q", u)
	}
	// The FLAGS went out once: not again at the next poll.
	if u := r.ok("NOOP"); len(u) != 0 {
		t.Errorf("NOOP: %q", u)
	}
}
