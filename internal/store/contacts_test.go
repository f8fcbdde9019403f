package store

import (
	"errors"
	"testing"
)

func TestContacts(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	if err := s.AddContact(ctx, "Alice", "tm1alice@tangle"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContact(ctx, "bob", "tm1bob@tangle"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContact(ctx, "alice", "tm1other@tangle"); !errors.Is(err, ErrContactExists) {
		t.Errorf("petname in another case: %v, want ErrContactExists", err)
	}
	if err := s.AddContact(ctx, "Alice at work", "tm1alice@tangle"); err != nil {
		t.Errorf("second petname for an address: %v", err)
	}
	for _, bad := range [][2]string{{"", "a"}, {" padded", "a"}, {"ctl\x01", "a"}, {"x", ""}, {"x", "has space"}} {
		if err := s.AddContact(ctx, bad[0], bad[1]); !errors.Is(err, ErrInvalidContact) {
			t.Errorf("AddContact(%q, %q) = %v", bad[0], bad[1], err)
		}
	}
	if err := s.RenameContact(ctx, "bob", "Alice"); !errors.Is(err, ErrContactExists) {
		t.Errorf("rename onto a taken petname: %v", err)
	}
	if err := s.RenameContact(ctx, "ALICE", "alice"); err != nil {
		t.Errorf("rename to another case of itself: %v", err)
	}
	if err := s.RenameContact(ctx, "bob", "Robert"); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameContact(ctx, "bob", "Bobby"); !errors.Is(err, ErrNoContact) {
		t.Errorf("rename of missing: %v", err)
	}
	cs, _ := s.Contacts(ctx)
	var names []string
	for _, c := range cs {
		names = append(names, c.Petname+"="+c.Address)
	}
	want := "alice=tm1alice@tangle,Alice at work=tm1alice@tangle,Robert=tm1bob@tangle"
	if got := join(names); got != want {
		t.Errorf("Contacts = %s\nwant %s", got, want)
	}
	if c, err := s.Contact(ctx, "ROBERT"); err != nil || c.Address != "tm1bob@tangle" {
		t.Errorf("Contact(ROBERT) = %+v, %v", c, err)
	}
	if byAddr, _ := s.ContactsByAddress(ctx, "tm1alice@tangle"); len(byAddr) != 2 {
		t.Errorf("ContactsByAddress = %+v", byAddr)
	}
	if err := s.RemoveContact(ctx, "robert"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveContact(ctx, "robert"); !errors.Is(err, ErrNoContact) {
		t.Errorf("second remove: %v", err)
	}
	if _, err := s.Contact(ctx, "Robert"); !errors.Is(err, ErrNoContact) {
		t.Errorf("removed contact: %v", err)
	}
	if err := s.AddContact(ctx, "Robert", "tm1new@tangle"); err != nil {
		t.Errorf("petname reusable after removal: %v", err)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}
