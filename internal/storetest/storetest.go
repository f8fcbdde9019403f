// Package storetest is test support for reading a mailbox store (package store) the way a test checks
// what arrived: every message of a mailbox, by role, with its flags and raw bytes. Only tests import it.
package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/tanglemail/tanglemail/internal/store"
)

// Message is a message in a mailbox.
type Message struct {
	UID   store.UID
	Flags store.Flags
	Raw   []byte
}

// Mailbox lists the mailbox of st with the given role, in UID order; a message expunged while it is
// read is left out. Errors fail t.
func Mailbox(t testing.TB, st *store.Store, role store.Role) []Message {
	t.Helper()
	ctx := context.Background()
	mb, err := st.MailboxByRole(ctx, role)
	if err != nil {
		t.Fatal(err)
	}
	l, err := st.List(ctx, mb.ID, store.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var out []Message
	for _, m := range l.Messages {
		raw, err := st.Raw(ctx, mb.ID, m.UID)
		if errors.Is(err, store.ErrNoMessage) {
			continue // expunged meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Message{UID: m.UID, Flags: m.Flags, Raw: raw})
	}
	return out
}
