package node

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/light"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// SubscribeRequest is one "tanglemail storage subscribe" (protocol.md §12, §14): create a
// subscription with a provider, or use the one the data directory holds, and pay for Days more.
type SubscribeRequest struct {
	DataDir  string
	Identity *identity.Identity
	Network  tangle.Params
	Provider string // multiaddr ending in /p2p/<peer id>
	MiB      uint32 // quota of a new subscription; more than the held one's raises it (top-up)
	Days     uint32
	Rail     payment.Rail
	// Confirm sees the quote before anything is paid; false stops without paying (nil: pay).
	Confirm func(Offer) bool
	// Progress hears each step of the payment (payment.PayAndActivate).
	Progress func(payment.Progress)
	Poll     time.Duration // how often the provider is asked while the payment confirms (default 1 s)
	// Created hears the subscription id when a new (pending) subscription was created and kept.
	Created func(wire.SubID)
}

// Offer is what the subscriber is asked to confirm.
type Offer struct {
	Provider peer.ID
	Renewal  bool // the subscription existed and was paid (or granted) before
	Terms    payment.Terms
	Quote    *payment.Quote
	Gas      uint64   // estimated gas (0 when the rail cannot estimate)
	GasPrice *big.Int // wei per gas (nil when the rail cannot estimate)
	Balance  *big.Int // the wallet's balance in wei
}

// Subscribed is the outcome of SubscribeRequest.
type Subscribed struct {
	Provider peer.ID
	Sub      wire.SubID
	Paid     bool // false: Confirm declined
	// Resumed is true when the payment was one an interrupted earlier run had sent (its quote, its
	// transaction): that run's days and quota, not this request's, were paid.
	Resumed bool
	Tx      payment.TxID
	Result  payment.Result
}

// feeEstimator is a rail that can estimate a payment's fee (the EVM rail).
type feeEstimator interface {
	EstimateFee(ctx context.Context, q *payment.Quote) (uint64, *big.Int, error)
}

// SubscribeStorage creates (or reuses) the data directory's subscription with a provider, records it
// in light.db — the one place subscriptions live, which the light client (StartLight) then uses — and
// pays for r.Days more: quote, confirm, pay (idempotent per quote), wait until the provider has
// verified the payment and activated the subscription. A payment an interrupted earlier run sent for
// the subscription is resumed instead (Subscribed.Resumed), so running the command again never pays
// twice.
func SubscribeStorage(ctx context.Context, r SubscribeRequest) (Subscribed, error) {
	var out Subscribed
	if r.Identity == nil || r.Rail == nil || r.Days == 0 {
		return out, errors.New("subscribe: needs an identity, a payment rail and days")
	}
	if r.Identity.TagBits() < 1 {
		return out, errors.New("your address reveals no tag bits, so a provider could only store everyone's mail: create an identity with --tag-bits ≥ 1")
	}
	ai, err := peer.AddrInfoFromString(r.Provider)
	if err != nil {
		return out, fmt.Errorf("provider %q: %w (give a multiaddr ending in /p2p/<peer id>)", r.Provider, err)
	}
	out.Provider = ai.ID
	db, err := light.OpenDB(filepath.Join(r.DataDir, LightFile))
	if err != nil {
		return out, err
	}
	defer db.Close()

	h, err := p2p.NewClientHost(ctx)
	if err != nil {
		return out, err
	}
	defer h.Close()
	cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
	defer ccancel()
	if err := h.Connect(cctx, *ai); err != nil {
		return out, fmt.Errorf("cannot reach the provider %s: %w", r.Provider, err)
	}
	name := ai.ID.String()
	sid, seed, have, err := db.Subscription(ctx, name)
	if err != nil {
		return out, err
	}
	var currentMiB uint32
	renewal := false
	if have {
		// The held subscription: its quota now (a top-up raises it); paid before unless still pending.
		if st, err := subscriptionStatus(cctx, h, ai.ID, r.Network.ID, sid, ed25519.NewKeyFromSeed(seed)); err == nil {
			currentMiB = uint32((st.QuotaBytes + 1<<20 - 1) >> 20)
			renewal = st.State != wire.Pending
		}
	} else {
		sess, err := wire.Dial(cctx, h, ai.ID, r.Network.ID)
		if err != nil {
			return out, fmt.Errorf("storage protocol with %s: %w", ai.ID, err)
		}
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		tk := r.Identity.TagKey()
		var tag tangle.Tag
		copy(tag[:], tk[:])
		sid, _, err = sess.Create(cctx, wire.CreateRequest{Prefix: wire.PrefixOf(tag, uint8(min(r.Identity.TagBits(), wire.MaxPrefixBits))),
			QuotaMiB: max(r.MiB, 1), RetentionDays: DefaultStorageRetentionDays, Key: pub})
		sess.Close()
		if err != nil {
			return out, fmt.Errorf("creating the subscription: %w", err)
		}
		if err := db.SaveSubscription(ctx, name, r.Provider, sid, priv.Seed()); err != nil {
			return out, err
		}
		currentMiB = max(r.MiB, 1)
		if r.Created != nil {
			r.Created(sid)
		}
	}
	out.Sub = sid

	pc := payment.NewClient(h, ai.ID, r.Network.ID)
	terms, err := pc.Terms(cctx)
	if err != nil {
		return out, fmt.Errorf("the provider's terms: %w", err)
	}
	if terms.Rail != r.Rail.Kind() || terms.ChainID != r.Rail.ChainID() {
		return out, fmt.Errorf("the provider is paid on chain id %d; give --chain-id %d and an --rpc of that chain", terms.ChainID, terms.ChainID)
	}
	poll := cmp.Or(r.Poll, time.Second)
	if rs, ok := r.Rail.(payment.Resumable); ok {
		// A payment an earlier run sent and did not see activated is resumed, not paid again.
		done, err := resumePayment(ctx, rs, r, pc, sid, poll, &out)
		if done || err != nil {
			return out, err
		}
	}
	var want uint32 // a top-up asks for more than the held quota
	if r.MiB > currentMiB {
		want = r.MiB
	}
	q, err := pc.QuoteMiB(cctx, terms, payment.SubID(sid), want, r.Days)
	if err != nil {
		return out, fmt.Errorf("quote: %w", err)
	}
	offer := Offer{Provider: ai.ID, Renewal: renewal, Terms: terms, Quote: q}
	if fe, ok := r.Rail.(feeEstimator); ok {
		if offer.Gas, offer.GasPrice, err = fe.EstimateFee(cctx, q); err != nil {
			return out, fmt.Errorf("estimating the fee: %w", err)
		}
	}
	if offer.Balance, err = r.Rail.Balance(cctx); err != nil {
		return out, err
	}
	if r.Confirm != nil && !r.Confirm(offer) {
		return out, nil
	}
	out.Tx, out.Result, err = payment.PayAndActivate(ctx, pc, r.Rail, q, poll, r.Progress)
	if err != nil {
		return out, fmt.Errorf("payment: %w", err)
	}
	out.Paid = true
	return out, nil
}

// resumePayment finishes the payment an interrupted run sent for sub, if the rail holds one that is
// not settled: it re-sends the recorded transaction (never a new one) and submits it until the
// provider activates or refuses it. done is true when that payment ended (out says how); false with
// no error when there was none to resume, or when it was never sent and its quote has expired (it is
// settled then: nothing was paid, and a new quote is asked for).
func resumePayment(ctx context.Context, rs payment.Resumable, r SubscribeRequest, pc *payment.Client, sid wire.SubID,
	poll time.Duration, out *Subscribed) (done bool, err error) {
	q, tx, ok, err := rs.Unsettled(ctx, payment.SubID(sid))
	if err != nil || !ok {
		return false, err
	}
	if r.Progress != nil {
		r.Progress(payment.Progress{Stage: "resuming", Tx: tx})
	}
	if _, err := r.Rail.Pay(ctx, q); err != nil {
		if ctx.Err() == nil && !time.Now().Before(q.Expires) {
			// Not on chain, cannot be sent, and too late to count: it will never pay anything.
			return false, rs.Settle(ctx, tx)
		}
		return true, fmt.Errorf("resuming the payment sent before (%s): %w; run the command again later (it pays anew only once that quote has expired, at %s, unsent)",
			tx, err, q.Expires.Local().Format(time.RFC1123))
	}
	out.Resumed = true
	out.Tx, out.Result, err = payment.PayAndActivate(ctx, pc, r.Rail, q, poll, r.Progress)
	if err != nil {
		var re *payment.RemoteError
		if errors.As(err, &re) && re.Final() {
			return true, fmt.Errorf("payment: the provider refused the payment sent before (%s): %w; run the command again to pay with a new quote", tx, err)
		}
		return true, fmt.Errorf("payment: %w", err)
	}
	out.Paid = true
	return true, nil
}

// subscriptionStatus asks a provider for a held subscription's status (authenticated with its key).
func subscriptionStatus(ctx context.Context, h wire.StreamOpener, pid peer.ID, netID tangle.NetworkID, id wire.SubID, key ed25519.PrivateKey) (wire.Status, error) {
	s, err := wire.Dial(ctx, h, pid, netID)
	if err != nil {
		return wire.Status{}, err
	}
	defer s.Close()
	if err := s.Auth(ctx, id, key); err != nil {
		return wire.Status{}, err
	}
	return s.Status(ctx)
}

// SavedProviders returns the providers of the subscriptions the data directory holds in light.db
// (their multiaddrs), for a light client started without --provider.
func SavedProviders(dataDir string) ([]string, error) {
	db, err := light.OpenDB(filepath.Join(dataDir, LightFile))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	subs, err := db.Subscriptions(context.Background())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range subs {
		if s.Addr != "" {
			out = append(out, s.Addr)
		}
	}
	return out, nil
}

// HeldSubscription is one subscription the data directory holds, as its provider reports it.
type HeldSubscription struct {
	Provider string // multiaddr (or the peer id, for one kept before addresses were)
	Sub      wire.SubID
	Status   wire.Status // zero when Err is set
	Err      error       // the provider could not be asked
}

// HeldSubscriptions asks the provider of each subscription in light.db for its status: state, usage,
// quota and the end of its paid period (the subscriber's view; it works whether or not a node runs).
func HeldSubscriptions(ctx context.Context, dataDir string, netID tangle.NetworkID) ([]HeldSubscription, error) {
	db, err := light.OpenDB(filepath.Join(dataDir, LightFile))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	subs, err := db.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	h, err := p2p.NewClientHost(ctx)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var out []HeldSubscription
	for _, s := range subs {
		hs := HeldSubscription{Provider: cmp.Or(s.Addr, s.Name), Sub: s.ID}
		_, seed, _, err := db.Subscription(ctx, s.Name)
		if err == nil {
			hs.Status, hs.Err = heldStatus(ctx, h, s, seed, netID)
		} else {
			hs.Err = err
		}
		out = append(out, hs)
	}
	return out, nil
}

func heldStatus(ctx context.Context, h *p2p.ClientHost, s light.SavedSubscription, seed []byte, netID tangle.NetworkID) (wire.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.Addr == "" {
		return wire.Status{}, errors.New("no address kept for this provider: run tanglemail light --provider <multiaddr> once")
	}
	ai, err := peer.AddrInfoFromString(s.Addr)
	if err != nil {
		return wire.Status{}, err
	}
	if err := h.Connect(ctx, *ai); err != nil {
		return wire.Status{}, fmt.Errorf("cannot reach the provider: %w", err)
	}
	return subscriptionStatus(ctx, h, ai.ID, netID, s.ID, ed25519.NewKeyFromSeed(seed))
}
