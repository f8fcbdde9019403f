package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
)

// EnqueueSealed seals msg (an RFC 5322 message held only in memory) from one identity to each
// recipient and queues the sealed envelopes as an outbox item whose recipient is already sealed, in one
// store transaction: when it returns nil the envelopes are on disk and the outbox's Run publishes them
// like any other sealed recipient (proof of work, publish, receipt, republish; protocol.md §10.1).
//
// Unlike Submit, neither the message nor any part of it is written: the item's body is a short
// placeholder naming the item (a bounce quotes it, never the message), and no Sent copy is filed. This is
// the path of a node that relays others' plaintext (the gateway): the plaintext never reaches a file.
// Messages that do not fit one envelope are chunked (mail.Split, a fresh random message id);
// EnqueueSealedBlob is the form for one the caller has sealed into a blob. The caller should Notify
// the outbox afterwards so it need not wait for its next pass.
func EnqueueSealed(ctx context.Context, st *store.Store, from *identity.Identity, network [8]byte,
	to []identity.Address, msg []byte, now time.Time) (store.OutboxID, error) {
	if st == nil || from == nil || len(to) == 0 {
		return 0, errors.New("outbox: EnqueueSealed needs a store, an identity and recipients")
	}
	content := mail.StripBcc(msg)
	mc, chunks, err := mail.Split(content, seal.MaxContent)
	if err != nil {
		return 0, err
	}
	parts := make([]part, 0, len(chunks)+1)
	for _, c := range chunks {
		parts = append(parts, part{seal.KindChunk, c})
	}
	parts = append(parts, part{seal.KindMail, mc})
	return enqueueSealedParts(ctx, st, from, network, to, parts, now)
}

// EnqueueSealedBlob is EnqueueSealed for a message already stored as a sealed blob (package blob,
// protocol.md §13.7): ref is the blob's encoded ref and header the message's header section (left out
// of the envelope when it does not fit), so the only envelope is the small blob mail, one block per
// recipient instead of a chunk per 32 KiB. The blob's key exists only inside the sealed envelopes.
func EnqueueSealedBlob(ctx context.Context, st *store.Store, from *identity.Identity, network [8]byte,
	to []identity.Address, ref, header []byte, now time.Time) (store.OutboxID, error) {
	if st == nil || from == nil || len(to) == 0 {
		return 0, errors.New("outbox: EnqueueSealedBlob needs a store, an identity and recipients")
	}
	hdr := mail.HeaderSection(mail.StripBcc(header))
	if 3+len(ref)+len(hdr) > seal.MaxContent {
		hdr = nil
	}
	mc, err := mail.EncodeBlob(ref, hdr)
	if err != nil {
		return 0, err
	}
	return enqueueSealedParts(ctx, st, from, network, to, []part{{seal.KindMail, mc}}, now)
}

// enqueueSealedParts seals parts to every recipient in memory and commits the envelopes with a
// placeholder item (EnqueueSealed).
func enqueueSealedParts(ctx context.Context, st *store.Store, from *identity.Identity, network [8]byte,
	to []identity.Address, parts []part, now time.Time) (store.OutboxID, error) {
	bundles := map[string][][]byte{}
	var rcpts []string
	for _, a := range to {
		rcpt := a.Mail()
		if _, ok := bundles[rcpt]; ok {
			continue
		}
		payloads, err := sealParts(from, a, network, now, parts)
		if err != nil {
			return 0, fmt.Errorf("outbox: seal: %w", err)
		}
		bundles[rcpt] = payloads
		rcpts = append(rcpts, rcpt)
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	placeholder := []byte("Subject: sealed relayed message " + hex.EncodeToString(nonce[:]) +
		"\r\nX-Tanglemail-Sealed: the content was sealed in memory and never stored\r\n\r\n")
	var id store.OutboxID
	err := st.Update(ctx, func(tx *store.Tx) error {
		var dup bool
		var err error
		id, dup, err = tx.Enqueue(store.OutboxNew{From: from.Address().Mail(), Rcpts: rcpts, Raw: placeholder, Created: now})
		if err != nil {
			return err
		}
		if dup {
			return errors.New("outbox: placeholder collision") // 128 random bits: never
		}
		for _, rcpt := range rcpts {
			if _, err := tx.UpdateRecipient(id, rcpt, sealedUpdate(bundles[rcpt], now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// sealParts seals every part from one identity to one recipient, in order (the main envelope last).
func sealParts(from *identity.Identity, to identity.Address, network [8]byte, sent time.Time, parts []part) ([][]byte, error) {
	payloads := make([][]byte, 0, len(parts))
	for _, p := range parts {
		payload, err := seal.Seal(from, to, network, p.kind, sent, p.content)
		if err != nil {
			return nil, err
		}
		payloads = append(payloads, payload)
	}
	return payloads, nil
}

// sealedUpdate records a recipient's sealed envelopes (pending → sealed, due now): the bundle and the
// replay key of its main envelope, the key a receipt names.
func sealedUpdate(payloads [][]byte, now time.Time) store.RcptUpdate {
	return store.RcptUpdate{
		State:       store.RcptSealed,
		EnvelopeKey: payloads[len(payloads)-1][:seal.EncSize],
		Envelope:    encodeBundle(payloads),
		NextAttempt: now,
	}
}
