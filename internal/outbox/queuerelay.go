package outbox

import (
	"context"
	"errors"

	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/store"
)

// QueueRelay submits a message that has Internet recipients (protocol.md §15.4), for the front doors
// (SMTP submission, the web client's compose): in one store transaction it files the Sent copy and
// queues raw for the tangle recipients rcpts (if any) and the relay message for the gateway, which
// alone learns the Internet recipients. Without tangle recipients the relay message is the queued item
// and the Sent copy. Submitting the same bytes again adds nothing (store.Submitted.Duplicate). raw is
// the message as the user wrote it, Bcc included: the relay message carries it without Bcc.
func QueueRelay(ctx context.Context, st *store.Store, from string, rcpts, internet []string, gateway string, raw []byte) (store.Submitted, error) {
	if st == nil {
		return store.Submitted{}, errors.New("outbox: QueueRelay without a store")
	}
	if gateway == "" || len(internet) == 0 {
		return store.Submitted{}, errors.New("outbox: QueueRelay needs a relay gateway and Internet recipients")
	}
	relay, err := mail.EncodeRelay(internet, mail.StripBcc(raw))
	if err != nil {
		return store.Submitted{}, err
	}
	var r store.Submitted
	err = st.Update(ctx, func(tx *store.Tx) error {
		if len(rcpts) == 0 {
			r, err = tx.Submit(store.Submission{OutboxNew: store.OutboxNew{From: from, Rcpts: []string{gateway}, Raw: relay}})
			return err
		}
		r, err = tx.Submit(store.Submission{OutboxNew: store.OutboxNew{From: from, Rcpts: rcpts, Raw: raw}})
		if err != nil || r.Duplicate {
			return err
		}
		_, _, err = tx.Enqueue(store.OutboxNew{From: from, Rcpts: []string{gateway}, Raw: relay})
		return err
	})
	if err != nil {
		return store.Submitted{}, err
	}
	return r, nil
}
