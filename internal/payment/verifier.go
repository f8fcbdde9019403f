package payment

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"
)

// Activator is the storage provider's activation seam: make subscription id active until until, with
// a quota of at least mib MiB (the paid quote's: a top-up raises it; a quota never shrinks). It must
// be idempotent (the same call twice leaves the same state), as the provider's ActivateQuota is.
type Activator func(ctx context.Context, id SubID, until time.Time, mib uint32) error

// NotFoundGrace is how long after a quote's expiry a transaction the chain does not know, or knows
// only as pending, is still worth waiting for (endpoints that lag behind the chain); after it, Process
// refuses it as paid late.
const NotFoundGrace = 10 * time.Minute

// Verifier is the provider's side of a payment: it checks a quote is its own, that the transaction
// pays it on chain, counts the transaction once, and activates the subscription.
type Verifier struct {
	Rail     Rail
	Ledger   *Ledger
	QuoteKey ed25519.PublicKey // the provider's quote key
	Activate Activator
	Now      func() time.Time

	ctr verifierCounters
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Process verifies that tx pays the quote enc and activates its subscription (protocol.md §14.3). A
// payment processed twice activates once: the second call returns the first claim. Nothing is
// counted or activated on any error.
func (v *Verifier) Process(ctx context.Context, tx TxID, enc []byte) (Claim, error) {
	c, err := v.process(ctx, tx, enc)
	v.ctr.note(err, c.Fresh)
	return c, err
}

func (v *Verifier) process(ctx context.Context, tx TxID, enc []byte) (Claim, error) {
	q, err := DecodeQuote(enc)
	if err != nil {
		return Claim{}, err
	}
	if err := q.Check(v.QuoteKey, time.Unix(0, 0)); err != nil { // expiry is judged by the block's time
		return Claim{}, err
	}
	p, err := v.Rail.Verify(ctx, tx, q)
	if (errors.Is(err, ErrNotFound) || errors.Is(err, ErrPending)) && v.now().After(q.Expires.Add(NotFoundGrace)) {
		// Unknown, or not in a block, this long after the quote expired: it cannot have been mined in
		// time (any block still to come is later). Final, so that a subscriber whose transaction never
		// made it is not told to wait forever (and can cancel it, EVM.Cancel).
		return Claim{}, fmt.Errorf("%w: %s is not in a block %v after the quote expired", ErrPaidLate, tx, NotFoundGrace)
	}
	if err != nil {
		return Claim{}, err
	}
	c, err := v.Ledger.Claim(ctx, tx, q, p, v.now())
	if err != nil {
		return Claim{}, err
	}
	if c.Activated {
		return c, nil
	}
	return c, v.activate(ctx, c)
}

func (v *Verifier) activate(ctx context.Context, c Claim) error {
	if v.Activate == nil {
		return errors.New("payment: no activator")
	}
	if err := v.Activate(ctx, c.Sub, c.PaidUntil, c.Quote.MiB); err != nil {
		v.ctr.activateFailed.Add(1)
		return fmt.Errorf("payment: activating subscription %x (payment counted; activation is retried at restart): %w", c.Sub, err)
	}
	return v.Ledger.MarkActivated(ctx, c.Tx, v.now())
}

// Resume activates the claims counted before a crash but not activated (run at start).
func (v *Verifier) Resume(ctx context.Context) (int, error) {
	cs, err := v.Ledger.Unactivated(ctx)
	if err != nil {
		return 0, err
	}
	for i, c := range cs {
		if err := v.activate(ctx, c); err != nil {
			return i, err
		}
	}
	return len(cs), nil
}

// WaitVerified polls r.Verify every interval until tx pays q with enough confirmations, or a
// non-retryable error, or ctx ends. progress hears each retryable state (pending, n of N
// confirmations, endpoint down).
func WaitVerified(ctx context.Context, r Rail, tx TxID, q *Quote, every time.Duration, progress func(Payment, error)) (Payment, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p, err := r.Verify(ctx, tx, q)
		if err == nil || !Retryable(err) {
			return p, err
		}
		if progress != nil {
			progress(p, err)
		}
		select {
		case <-ctx.Done():
			return p, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
