package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/light"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/payment/gethdev"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// fetchHeld fetches from provider addr as the subscription dir's light.db holds for it (a fresh peer
// id), and returns the provider's answer.
func fetchHeld(t *testing.T, dir, addr string, netID tangle.NetworkID) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		t.Fatal(err)
	}
	db, err := light.OpenDB(filepath.Join(dir, LightFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id, seed, ok, err := db.Subscription(ctx, ai.ID.String())
	if err != nil || !ok {
		t.Fatalf("light.db holds no subscription with %s: %v", ai.ID, err)
	}
	h, err := p2p.NewClientHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	s, err := wire.Dial(ctx, h, ai.ID, netID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Auth(ctx, id, ed25519.NewKeyFromSeed(seed)); err != nil {
		return err
	}
	_, _, _, err = s.Fetch(ctx, 0, 10, 1<<20)
	return err
}

// TestGethDevLightAfterPayment is issue 10's must-show, on a real `geth --dev --dev.period 1` on
// loopback: bob pays alice's storage node for a subscription (node.SubscribeStorage, the code of
// `tanglemail storage subscribe`); the provider refuses to serve it until the payment is confirmed
// (CodePending); bob's light client uses the paid subscription (light.db, where subscribe keeps it);
// bob is off longer than the TTL (the short test network: 60 s) while alice sends mail and chat; bob
// comes back as a light client and gets every message exactly once; when the paid period ends the
// provider refuses again (CodeExpired).
func TestGethDevLightAfterPayment(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a 60 s TTL")
	}
	const mails, chats = 20, 5
	g := gethdev.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	walletKey, _ := crypto.GenerateKey()
	g.Fund(t, crypto.PubkeyToAddress(walletKey.PublicKey), new(big.Int).Mul(big.NewInt(10), gethdev.OneIOTA))

	// Alice's storage node sells subscriptions, paid on geth, activated after 3 confirmations.
	params := tangle.ShortNet
	clock := &testClock{}
	scfg := DevnetConfig(t.TempDir())
	scfg.Network = params
	payee := crypto.PubkeyToAddress(must(crypto.GenerateKey()).PublicKey)
	scfg.Storage = StorageConfig{Enabled: true, Public: true, Now: clock.Now, Payments: &StoragePaymentsConfig{
		RPC: []string{g.URL}, ChainID: g.ChainID, Confirmations: 3, Payee: payee, Price: 1000}}
	sn, err := Start(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	s := &storageNode{Node: sn, p: sn.Storage()}
	acfg := DevnetConfig(t.TempDir())
	acfg.Network = params
	acfg.Bootstrap = []string{s.addr()}
	alice, err := Start(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	waitFor(t, "alice and the storage node to peer", 30*time.Second, func() bool { return alice.Network().PeerCount() == 1 })

	// Bob subscribes and pays.
	bobDir := t.TempDir()
	bcfg := DevnetConfig(bobDir)
	bcfg.Network = params
	bcfg.StorageStatusInterval = time.Hour
	bobID, _, err := LoadOrCreateIdentity(bobDir, bcfg.Passphrase, bcfg.TagBits)
	if err != nil {
		t.Fatal(err)
	}
	led, err := payment.OpenLedger(filepath.Join(bobDir, PaymentFile))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	rail, err := payment.DialEVM(ctx, payment.EVMConfig{ChainID: g.ChainID, Key: walletKey, Ledger: led}, g.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rail.Close()
	var (
		pendingErr error
		firstTx    payment.TxID
	)
	start := time.Now()
	// The first run is interrupted (Ctrl-C) once the payment is sent, before it confirms.
	ictx, interrupt := context.WithCancel(ctx)
	_, err = SubscribeStorage(ictx, SubscribeRequest{DataDir: bobDir, Identity: bobID, Network: params, Provider: s.addr(),
		MiB: 16, Days: 1, Rail: rail, Poll: 200 * time.Millisecond,
		Progress: func(p payment.Progress) {
			if p.Stage == "paid" {
				// Sent, not yet confirmed (nor submitted): the provider must refuse to serve.
				pendingErr = fetchHeld(t, bobDir, s.addr(), params.ID)
				firstTx = p.Tx
				interrupt()
			}
		}})
	interrupt()
	if !errors.Is(err, context.Canceled) || firstTx == (payment.TxID{}) {
		t.Fatalf("interrupted run: %v (tx %s), want it cancelled after paying", err, firstTx)
	}
	// Run again: the payment sent is resumed, not paid a second time.
	res, err := SubscribeStorage(ctx, SubscribeRequest{DataDir: bobDir, Identity: bobID, Network: params, Provider: s.addr(),
		MiB: 16, Days: 1, Rail: rail, Poll: 200 * time.Millisecond,
		Confirm: func(Offer) bool { t.Error("the re-run asked to confirm a new quote"); return false }})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if !res.Paid || !res.Result.Active || !res.Resumed || res.Tx != firstTx {
		t.Fatalf("re-run: %+v, want the interrupted payment %s resumed and active", res, firstTx)
	}
	if _, _, open, err := rail.Unsettled(ctx, payment.SubID(res.Sub)); open || err != nil {
		t.Fatalf("after activation the payment is still open for resumption (%v)", err)
	}
	if !wire.IsCode(pendingErr, wire.CodePending) || !strings.Contains(pendingErr.Error(), "pending") {
		t.Fatalf("fetch before the payment confirmed: %v, want a pending refusal", pendingErr)
	}
	t.Logf("before the payment confirmed the provider said: %v", pendingErr)
	t.Logf("subscribe → active on geth --dev (period 1 s, 3 confirmations): %v", elapsed.Round(time.Millisecond))

	// Bob's light client uses the paid subscription: it starts from light.db's providers.
	saved, err := SavedProviders(bobDir)
	if err != nil || len(saved) != 1 || saved[0] != s.addr() {
		t.Fatalf("light.db's providers: %q %v", saved, err)
	}
	bcfg.StorageProviders = saved
	bob := startLight(t, bcfg)
	bobAddr := bob.Identity().Address().Mail()
	if st := bob.Status(); len(st.Storage) != 1 || st.Storage[0].State != "active" {
		t.Fatalf("bob's storage status: %+v", st.Storage)
	}
	if subs := s.p.Subscriptions(); len(subs) != 1 {
		t.Fatalf("the provider has %d subscriptions, want bob's paid one only", len(subs))
	}
	bob.Close()

	// Bob is off; alice sends; her node gives up at the TTL.
	sendPastTTL(t, alice, bobAddr, "paid", mails, chats, "paid chat %02d")

	// Bob comes back as a light client on his paid subscription.
	bob = startLight(t, bcfg)
	waitFor(t, "bob's INBOX and Chats", 2*time.Minute, func() bool {
		return mailboxCount(t, bob, store.RoleInbox) >= mails && mailboxCount(t, bob, store.RoleChats) >= chats
	})
	subjects, _ := imapSubjects(t, bob, "INBOX")
	slices.Sort(subjects)
	if len(subjects) != mails {
		t.Fatalf("bob's INBOX: %d messages, want %d: %q", len(subjects), mails, subjects)
	}
	for i, sj := range subjects {
		if want := fmt.Sprintf("paid mail %02d", i); sj != want {
			t.Fatalf("INBOX subject %d: %q, want %q", i, sj, want)
		}
	}
	// The subscriber's view: status and /metrics show the paid period and the quota in use.
	if st := bob.Status(); len(st.Storage) != 1 || st.Storage[0].State != "active" || st.Storage[0].Expires == "" ||
		st.Storage[0].QuotaBytes != 16<<20 {
		t.Fatalf("bob's storage status: %+v", st.Storage)
	}
	paidUntil := gauge(t, bob, "tanglemail_light_subscription_paid_until_seconds")
	if d := time.Until(time.Unix(int64(paidUntil), 0)); d < 23*time.Hour || d > 25*time.Hour {
		t.Fatalf("light_subscription_paid_until_seconds %v: %v from now, want about a day", paidUntil, d)
	}
	if q := gauge(t, bob, "tanglemail_light_subscription_quota_bytes"); q != 16<<20 {
		t.Fatalf("light_subscription_quota_bytes %v", q)
	}
	if cs, _ := imapSubjects(t, bob, "Chats"); len(cs) != chats {
		t.Fatalf("bob's Chats: %d, want %d", len(cs), chats)
	}
	waitDelivered(t, alice, mails)
	bob.Close()

	// The paid day ends: the provider refuses, and bob's light client is told why.
	clock.advance(25 * time.Hour)
	if err := fetchHeld(t, bobDir, s.addr(), params.ID); !wire.IsCode(err, wire.CodeExpired) {
		t.Fatalf("fetch after the paid period: %v, want an expired refusal", err)
	} else {
		t.Logf("after the paid period the provider said: %v", err)
	}
	bob2, err := StartLight(ctx, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bob2.Close()
	waitFor(t, "bob's light client to report the expired subscription", 60*time.Second, func() bool {
		st := bob2.LightClients()[0].Status()
		return strings.Contains(st.LastError, "expired")
	})
	t.Logf("bob's light client: %q", bob2.LightClients()[0].Status().LastError)
}

// gauge reads an unlabelled gauge of n's /metrics.
func gauge(t *testing.T, n *Node, name string) float64 {
	t.Helper()
	mfs, err := n.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s in /metrics", name)
	return 0
}
