package node

import (
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/tanglemail/tanglemail/internal/p2p/p2ptest"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/payment/devchain"
	"github.com/tanglemail/tanglemail/internal/storage"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// TestPaidStorageSubscription: a subscriber creates a storage subscription (pending: the provider
// refuses to serve it), asks terms and a quote, pays on a dev chain (go-ethereum's simulated backend
// over JSON-RPC on loopback, a block every 200 ms), and the provider activates it only after the
// payment is verified with 2 confirmations; when the paid period ends it refuses again, and a renewal
// extends it.
func TestPaidStorageSubscription(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	clock := &testClock{}
	walletKey, _ := crypto.GenerateKey()
	chain, err := devchain.Start(devchain.Config{Funded: []common.Address{crypto.PubkeyToAddress(walletKey.PublicKey)}, Period: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()

	params := tangle.DevNet
	prov, err := storage.Open(storage.Config{Dir: t.TempDir(), Params: params, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Close()
	// Quotes are signed with the provider's libp2p key (protocol.md §14.1).
	srv := p2ptest.LoopbackHost(t)
	rawKey, err := srv.Host().Peerstore().PrivKey(srv.ID()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	quoteKey := ed25519.PrivateKey(rawKey)
	payee := crypto.PubkeyToAddress(must(crypto.GenerateKey()).PublicKey)
	provDir := t.TempDir()
	sp, err := StartStoragePayments(ctx, prov, StoragePaymentsConfig{DataDir: provDir, RPC: []string{chain.URL}, ChainID: devchain.ChainID,
		Confirmations: 2, Payee: payee, Price: 1000, QuoteKey: quoteKey, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	defer srv.Close() // before the provider and the payment service
	srv.HandleStream(prov.Protocol(), prov.Serve)
	srv.HandleStream(payment.Protocol(params.ID), sp.Service.Serve)

	// The subscriber.
	h, pid, sess := dialStorage(t, ctx, srv.Addrs()[0], params.ID)
	id := subscribe(t, ctx, sess, wire.CreateRequest{Prefix: wire.Prefix{Bits: 8, Tag: [8]byte{0xab}}, QuotaMiB: 16, RetentionDays: 30}, wire.Pending)
	if _, _, _, err := sess.Fetch(ctx, 0, 10, 1<<20); !wire.IsCode(err, wire.CodePending) {
		t.Fatalf("fetch before payment: %v, want pending", err)
	}

	pc := payment.NewClient(h, pid, params.ID)
	terms, err := pc.Terms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if terms.PricePerMiB != 1000 || common.BytesToAddress(terms.Address) != payee || terms.ChainID != devchain.ChainID || terms.Confirmations != 2 {
		t.Fatalf("terms %+v", terms)
	}
	if _, err := pc.Quote(ctx, terms, payment.SubID{9}, 1); err == nil {
		t.Fatal("quote for an unknown subscription")
	}
	// A host that relays another's payment service announces a quote key that is not its own: refused.
	mitm := p2ptest.LoopbackHost(t)
	mitm.HandleStream(payment.Protocol(params.ID), sp.Service.Serve)
	mpid, err := h.ConnectAddr(ctx, mitm.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := payment.NewClient(h, mpid, params.ID).Terms(ctx); err == nil || !strings.Contains(err.Error(), "not its own") {
		t.Fatalf("terms from a host whose key is not the quote key: %v, want a refusal", err)
	}
	rail := evmRail(t, ctx, devchain.ChainID, walletKey, chain.URL)

	pay := func(days uint32) payment.Result {
		t.Helper()
		q, err := pc.Quote(ctx, terms, payment.SubID(id), days)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := payment.Price(1000, 16, days); q.Amount != want || q.MiB != 16 {
			t.Fatalf("quote %+v, want amount %d", q, want)
		}
		var stages []string
		_, res, err := payment.PayAndActivate(ctx, pc, rail, q, 100*time.Millisecond, func(p payment.Progress) {
			stages = append(stages, p.Stage)
			if p.Stage == "confirming" {
				if st, err := sess.Status(ctx); err == nil && st.State == wire.Active && days == 1 && len(stages) > 0 && clock.off == 0 {
					t.Error("active before the payment was verified")
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Active || len(stages) < 2 {
			t.Fatalf("result %+v, stages %v", res, stages)
		}
		return res
	}
	res := pay(1)
	if _, _, _, err := sess.Fetch(ctx, 0, 10, 1<<20); err != nil {
		t.Fatalf("fetch after payment: %v", err)
	}
	if d := res.PaidUntil.Sub(clock.Now()); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("paid until %v", res.PaidUntil)
	}
	// The paid period ends: refused.
	clock.advance(25 * time.Hour)
	if _, _, _, err := sess.Fetch(ctx, 0, 10, 1<<20); !wire.IsCode(err, wire.CodeExpired) {
		t.Fatalf("fetch after the paid period: %v, want expired", err)
	}
	// Renewal: two more days from now.
	res2 := pay(2)
	if d := res2.PaidUntil.Sub(clock.Now()); d < 47*time.Hour || d > 49*time.Hour {
		t.Fatalf("renewed until %v (now %v)", res2.PaidUntil, clock.Now())
	}
	if _, _, _, err := sess.Fetch(ctx, 0, 10, 1<<20); err != nil {
		t.Fatalf("fetch after renewal: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestPaidStorageNode: a full node started with paid storage (the --storage-price flags' config) sells
// a subscription: pending, quote signed with its peer key, paid on a dev chain, active after
// verification, served.
func TestPaidStorageNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	walletKey, _ := crypto.GenerateKey()
	chain, err := devchain.Start(devchain.Config{Funded: []common.Address{crypto.PubkeyToAddress(walletKey.PublicKey)}, Period: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	payee := crypto.PubkeyToAddress(must(crypto.GenerateKey()).PublicKey)
	scfg := testConfig(t, t.TempDir())
	scfg.Storage = StorageConfig{Enabled: true, Payments: &StoragePaymentsConfig{RPC: []string{chain.URL}, ChainID: devchain.ChainID,
		Confirmations: 2, Payee: payee, Price: 2000}}
	s, err := Start(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := s.StorageStatus()
	if len(st.Addrs) == 0 {
		t.Fatalf("storage status %+v", st)
	}
	h, pid, sess := dialStorage(t, ctx, st.Addrs[0], scfg.Network.ID)
	id := subscribe(t, ctx, sess, wire.CreateRequest{Prefix: wire.Prefix{Bits: 8, Tag: [8]byte{0x5a}}, QuotaMiB: 8}, wire.Pending)
	if _, _, _, err := sess.Fetch(ctx, 0, 10, 1<<20); !wire.IsCode(err, wire.CodePending) {
		t.Fatalf("before payment: %v", err)
	}
	pc := payment.NewClient(h, pid, scfg.Network.ID)
	terms, err := pc.Terms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := pid.ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := pk.Raw(); !ed25519.PublicKey(raw).Equal(terms.QuoteKey) {
		t.Fatal("quotes are not signed with the node's peer key")
	}
	q, err := pc.Quote(ctx, terms, payment.SubID(id), 30)
	if err != nil {
		t.Fatal(err)
	}
	rail := evmRail(t, ctx, devchain.ChainID, walletKey, chain.URL)
	if _, res, err := payment.PayAndActivate(ctx, pc, rail, q, 100*time.Millisecond, nil); err != nil || !res.Active {
		t.Fatalf("pay: %+v %v", res, err)
	}
	if _, _, _, err := sess.Fetch(ctx, 0, 10, 1<<20); err != nil {
		t.Fatalf("after payment: %v", err)
	}
}
