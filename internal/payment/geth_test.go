package payment

import (
	"context"
	"crypto/ed25519"
	"math/big"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/tanglemail/tanglemail/internal/payment/gethdev"
)

// startGethDev is package gethdev's geth --dev (shared with package node's end-to-end test).
func startGethDev(t testing.TB) *gethdev.Dev { return gethdev.Start(t) }

// TestGethDevPayment pays and verifies on a real geth --dev chain (a block a second): nothing is
// activated before N confirmations, then exactly once.
func TestGethDevPayment(t *testing.T) {
	g := startGethDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	payerKey := mustKey(t)
	g.Fund(t, crypto.PubkeyToAddress(payerKey.PublicKey), new(big.Int).Mul(big.NewInt(10), oneIOTA))
	id, err := g.Client.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	payee := crypto.PubkeyToAddress(mustKey(t).PublicKey)
	_, quoteKey, _ := ed25519.GenerateKey(nil)
	payer, err := DialEVM(ctx, EVMConfig{ChainID: id.Uint64(), Key: payerKey, Ledger: openLedger(t, "payer.db")}, g.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer payer.Close()
	prov, err := DialEVM(ctx, EVMConfig{ChainID: id.Uint64(), PayeeAddress: &payee, Confirmations: 3}, g.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Close()
	acts := &activations{}
	v := &Verifier{Rail: prov, Ledger: openLedger(t, "provider.db"), QuoteKey: quoteKey.Public().(ed25519.PublicKey), Activate: acts.activate}

	start := time.Now()
	q := &Quote{Rail: RailEVM, ChainID: id.Uint64(), Sub: SubID{0xb0, 0xb}, Address: payee.Bytes(), Amount: 250_000_000,
		MiB: 16, Days: 7, Expires: time.Now().Add(10 * time.Minute)}
	if err := q.Sign(quoteKey); err != nil {
		t.Fatal(err)
	}
	enc, _ := q.Encode()
	tx, err := payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Process(ctx, tx, enc); !Retryable(err) {
		t.Fatalf("right after paying: %v, want pending or unconfirmed", err)
	}
	var states []string
	if _, err := WaitVerified(ctx, prov, tx, q, 200*time.Millisecond, func(p Payment, err error) {
		if s := err.Error(); len(states) == 0 || states[len(states)-1] != s {
			states = append(states, s)
		}
		if len(acts.calls) != 0 {
			t.Error("activated before it was confirmed")
		}
	}); err != nil {
		t.Fatal(err)
	}
	c, err := v.Process(ctx, tx, enc)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if !c.Fresh || len(acts.calls) != 1 || acts.calls[0].id != q.Sub {
		t.Fatalf("claim %+v, activations %+v", c, acts.calls)
	}
	if tx2, err := payer.Pay(ctx, q); err != nil || tx2 != tx {
		t.Fatalf("paying the quote again: %s %v", tx2, err)
	}
	if _, err := v.Process(ctx, tx, enc); err != nil || len(acts.calls) != 1 {
		t.Fatalf("processing again: %v, %d activations", err, len(acts.calls))
	}
	t.Logf("subscribe → active on geth --dev (period 1 s, 3 confirmations): %v; states seen: %q", elapsed.Round(time.Millisecond), states)
}

// BenchmarkGethSubscribeToActive measures quote → pay → 3 confirmations → activated on geth --dev
// with a block a second (run with -benchtime 3x).
func BenchmarkGethSubscribeToActive(b *testing.B) {
	g := startGethDev(b)
	ctx := context.Background()
	payerKey := mustKey(b)
	g.Fund(b, crypto.PubkeyToAddress(payerKey.PublicKey), new(big.Int).Mul(big.NewInt(100), oneIOTA))
	id, _ := g.Client.ChainID(ctx)
	payee := crypto.PubkeyToAddress(mustKey(b).PublicKey)
	_, quoteKey, _ := ed25519.GenerateKey(nil)
	payer, _ := DialEVM(ctx, EVMConfig{ChainID: id.Uint64(), Key: payerKey, Ledger: openLedger(b, "payer.db")}, g.URL)
	prov, _ := DialEVM(ctx, EVMConfig{ChainID: id.Uint64(), PayeeAddress: &payee, Confirmations: 3}, g.URL)
	v := &Verifier{Rail: prov, Ledger: openLedger(b, "provider.db"), QuoteKey: quoteKey.Public().(ed25519.PublicKey),
		Activate: (&activations{}).activate}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		q := &Quote{Rail: RailEVM, ChainID: id.Uint64(), Sub: SubID{byte(i), byte(i >> 8)}, Address: payee.Bytes(),
			Amount: 1_000_000, Days: 1, Expires: time.Now().Add(10 * time.Minute)}
		q.Sign(quoteKey)
		enc, _ := q.Encode()
		tx, err := payer.Pay(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := WaitVerified(ctx, prov, tx, q, 100*time.Millisecond, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := v.Process(ctx, tx, enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/subscription")
}
