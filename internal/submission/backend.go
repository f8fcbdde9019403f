package submission

import (
	"context"
	"errors"
	"strconv"

	"github.com/tanglemail/tanglemail/internal/store"
)

// StoreBackend is the Backend of a node: it files the Sent copy and enqueues the outbox item in one
// store transaction (store.Submit), with one outbox recipient row per envelope recipient. When
// Submit returns nil the transaction is on disk (the store commits with synchronous=FULL).
//
// The store keeps one body for the Sent copy and the outbox item, so the outbox item holds
// Submission.SentCopy, Bcc field included: the outbox derives the delivered bytes with
// mail.StripBcc before sealing (mail.StripBcc(SentCopy) == Submission.Raw). Submitting the same
// bytes again (a client retrying after a lost 250) adds nothing and returns the first queue id.
type StoreBackend struct {
	Store *store.Store
}

// Submit implements Backend. The queue id is the outbox item's id.
func (b StoreBackend) Submit(ctx context.Context, s Submission) (string, error) {
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
	r, err := b.Store.Submit(ctx, store.Submission{
		OutboxNew: store.OutboxNew{From: s.From.Mail(), Rcpts: rcpts, Raw: raw},
	})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(r.OutboxID, 10), nil
}
