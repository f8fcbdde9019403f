package submission

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/store"
)

// ContactResolver is what a Backend may also do: find a contact's address by petname. A recipient that
// is a petname (RCPT TO:<bob> or <bob@tangle>) is refused either way, but then with the address to write
// to (docs/decisions.md: petnames as SMTP recipients).
type ContactResolver interface {
	// ContactAddress returns the address, as <address>@tangle, of the contact with this petname (any
	// case); ok is false if there is none.
	ContactAddress(ctx context.Context, petname string) (addr string, ok bool)
}

// ContactAddress implements ContactResolver with the store's address book.
func (b StoreBackend) ContactAddress(ctx context.Context, petname string) (string, bool) {
	if b.Store == nil {
		return "", false
	}
	c, err := b.Store.Contact(ctx, petname)
	if err != nil {
		return "", false
	}
	if a, err := mail.ParseRecipient(c.Address); err == nil {
		return a.Mail(), true
	}
	if a, err := identity.ParseAddress(c.Address); err == nil {
		return a.Mail(), true
	}
	return "", false
}

// StoreBackend is the Backend of a node: it files the Sent copy and enqueues the outbox item in one
// store transaction (store.Submit), with one outbox recipient row per envelope recipient. When
// Submit returns nil the transaction is on disk (the store commits with synchronous=FULL).
//
// The store keeps one body for the Sent copy and the outbox item, so the outbox item holds
// Message.SentCopy, Bcc field included: the outbox derives the delivered bytes with
// mail.StripBcc before sealing (mail.StripBcc(SentCopy) == Message.Raw). Submitting the same
// bytes again (a client retrying after a lost 250) adds nothing and returns the first queue id.
type StoreBackend struct {
	Store *store.Store
}

// Submit implements Backend. The queue id is the outbox item's id.
func (b StoreBackend) Submit(ctx context.Context, s Message) (string, error) {
	if b.Store == nil {
		return "", errors.New("submission: StoreBackend without a store")
	}
	rcpts := make([]string, len(s.Rcpts))
	for i, a := range s.Rcpts {
		rcpts[i] = a.Mail()
	}
	raw := s.SentCopy
	if raw == nil {
		raw = s.Raw
	}
	o := store.OutboxNew{From: s.From.Mail(), Rcpts: rcpts, Raw: raw}
	if s.Text != nil {
		// A spooled message: filed from its header and the spool file, never held whole.
		o.Raw, o.Body = nil, io.MultiReader(bytes.NewReader(raw), s.Text)
	}
	r, err := b.Store.Submit(ctx, store.Submission{OutboxNew: o})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(int64(r.OutboxID), 10), nil
}
