package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/api"
)

func TestContacts(t *testing.T) {
	f := newFakeAPI(t)
	dir := f.dataDir()

	for _, args := range [][]string{{"contacts"}, {"contacts", "list"}} {
		code, out, errs := runCLI(t, nil, append(args, "--data-dir", dir)...)
		want := "bob    " + bobAddr + "\ncarol  " + carolAddr + "\n"
		if code != 0 || out != want {
			t.Fatalf("%v: exit %d: %s\n got %q\nwant %q", args, code, errs, out, want)
		}
	}
	// --json prints the node's answer, also after the subcommand.
	code, out, errs := runCLI(t, nil, "contacts", "list", "--json", "--data-dir", dir)
	var list struct {
		Contacts []api.Contact `json:"contacts"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list.Contacts) != 2 || list.Contacts[1].Petname != "carol" {
		t.Fatalf("list --json: exit %d: %s %v\n%s", code, errs, err, out)
	}

	code, out, errs = runCLI(t, nil, "contacts", "add", "dave", "tm1davedave@tangle", "--data-dir", dir)
	if code != 0 || out != "Added dave: tm1davedave@tangle\n" {
		t.Fatalf("add: exit %d: %s%s", code, out, errs)
	}
	adds := f.requestsTo("POST /api/contacts")
	if len(adds) != 1 || adds[0].Body != `{"petname":"dave","address":"tm1davedave@tangle"}` ||
		adds[0].ContentType != "application/json" || adds[0].Auth != "Bearer "+fakePassword {
		t.Fatalf("add request: %+v", adds)
	}
	code, _, errs = runCLI(t, nil, "contacts", "--data-dir", dir, "add", "dave", "tm1other@tangle")
	if code != 1 || !strings.Contains(errs, `the petname "dave" is taken: choose another, or first remove the old one with `+"`tanglemail contacts remove dave`") {
		t.Fatalf("add taken: exit %d: %s", code, errs)
	}
	code, _, errs = runCLI(t, nil, "contacts", "--data-dir", dir, "add", "erin", "erin@example.com")
	if code != 1 || !strings.Contains(errs, `cannot add "erin": the node answered 400: address: not a tanglemail address`) {
		t.Fatalf("add bad address: exit %d: %s", code, errs)
	}

	code, out, errs = runCLI(t, nil, "contacts", "--data-dir", dir, "remove", "dave")
	if code != 0 || out != "Removed dave.\n" {
		t.Fatalf("remove: exit %d: %s%s", code, out, errs)
	}
	code, _, errs = runCLI(t, nil, "contacts", "--data-dir", dir, "remove", "a/b c")
	if code != 1 || !strings.Contains(errs, `no contact named "a/b c" (list them with `+"`tanglemail contacts`)") {
		t.Fatalf("remove missing: exit %d: %s", code, errs)
	}
	var dels []string
	for _, r := range f.requests() {
		if r.Method == "DELETE" {
			dels = append(dels, r.Path)
		}
	}
	if strings.Join(dels, " ") != "/api/contacts/dave /api/contacts/a%2Fb%20c" {
		t.Fatalf("DELETE paths %q", dels)
	}

	// Empty list.
	f.mu.Lock()
	f.contacts = nil
	f.mu.Unlock()
	code, out, _ = runCLI(t, nil, "contacts", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "No contacts yet. Add one with: tanglemail contacts add <petname> <address>") {
		t.Fatalf("empty: exit %d: %s", code, out)
	}
}

func TestContactsErrors(t *testing.T) {
	f := newFakeAPI(t)
	for _, tc := range []struct {
		name string
		dir  string
		args []string
		code int
		want string
	}{
		{"unknown subcommand", f.dataDir(), []string{"frob"}, 2, `no subcommand "frob" (want list, add or remove)`},
		{"add without address", f.dataDir(), []string{"add", "bob"}, 2, "contacts add takes a petname and an address"},
		{"remove two", f.dataDir(), []string{"remove", "a", "b"}, 2, "contacts remove takes one petname"},
		{"list with argument", f.dataDir(), []string{"list", "x"}, 2, "contacts list takes no arguments"},
		{"wrong password", fakeDataDir(t, f.srv.URL, "nope"), nil, 1, "refused the password in "},
		{"node not answering", fakeDataDir(t, closedURL(t), fakePassword), []string{"add", "x", "tm1x"}, 1, "(is it running? start it with `tanglemail --data-dir "},
		{"no node", t.TempDir(), nil, 1, "no node is running on "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, nil, append([]string{"contacts", "--data-dir", tc.dir}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d (want %d): %s%s\nwant %q", code, tc.code, out, errs, tc.want)
			}
		})
	}
	if r := f.requestsTo("POST /api/contacts"); len(r) != 0 {
		t.Fatalf("usage errors reached the node: %v", r)
	}
}
