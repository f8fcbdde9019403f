package payment

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"

	"github.com/tanglemail/tanglemail/internal/p2p/p2ptest"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

const simChainID = 1337 // go-ethereum's simulated backend

var oneIOTA = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

// world is one simulated chain with a funded payer wallet, a provider (payee address + quote key) and
// their ledgers.
type world struct {
	t        *testing.T
	sim      *simulated.Backend
	chainID  uint64
	payerKey *ecdsa.PrivateKey
	payee    common.Address
	quoteKey ed25519.PrivateKey
	payer    *EVM
	provider *EVM
	payLed   *Ledger
	provLed  *Ledger
	activ    *activations
	verifier *Verifier
	// nextNonce: see EVM.nextNonce; the simulated pool's pending nonce can lag a sent transaction.
	nextNonce uint64
}

type activations struct {
	calls []activation
}

type activation struct {
	id    SubID
	until time.Time
	mib   uint32
}

func (a *activations) activate(_ context.Context, id SubID, until time.Time, mib uint32) error {
	a.calls = append(a.calls, activation{id, until, mib})
	return nil
}

func withChainID(id uint64) func(*node.Config, *ethconfig.Config) {
	return func(_ *node.Config, ec *ethconfig.Config) {
		c := *ec.Genesis.Config
		c.ChainID = new(big.Int).SetUint64(id)
		ec.Genesis.Config = &c
		ec.NetworkId = id
	}
}

func withHTTP(port int) func(*node.Config, *ethconfig.Config) {
	return func(nc *node.Config, _ *ethconfig.Config) {
		nc.HTTPHost = "127.0.0.1"
		nc.HTTPPort = port
		nc.HTTPModules = []string{"eth", "net", "web3"}
	}
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSim(t testing.TB, payer common.Address, opts ...func(*node.Config, *ethconfig.Config)) *simulated.Backend {
	alloc := types.GenesisAlloc{payer: {Balance: new(big.Int).Mul(big.NewInt(1000), oneIOTA)}}
	sim := simulated.NewBackend(alloc, opts...)
	t.Cleanup(func() { sim.Close() })
	return sim
}

func fastRetry() Retry {
	return Retry{Attempts: 3, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, CallTimeout: 2 * time.Second}
}

func newWorld(t *testing.T, opts ...func(*node.Config, *ethconfig.Config)) *world {
	t.Helper()
	w := &world{t: t, payerKey: mustKey(t), payee: crypto.PubkeyToAddress(mustKey(t).PublicKey), chainID: simChainID}
	_, w.quoteKey, _ = ed25519.GenerateKey(rand.Reader)
	w.sim = newSim(t, crypto.PubkeyToAddress(w.payerKey.PublicKey), opts...)
	id, err := w.sim.Client().ChainID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.chainID = id.Uint64()
	w.payLed = openLedger(t, "payer.db")
	w.provLed = openLedger(t, "provider.db")
	ep := Endpoint{Name: "simulated", Client: w.sim.Client()}
	w.payer, err = NewEVM(EVMConfig{ChainID: w.chainID, Key: w.payerKey, Ledger: w.payLed, Retry: fastRetry()}, ep)
	if err != nil {
		t.Fatal(err)
	}
	w.provider, err = NewEVM(EVMConfig{ChainID: w.chainID, PayeeAddress: &w.payee, Confirmations: 2, Retry: fastRetry()}, ep)
	if err != nil {
		t.Fatal(err)
	}
	w.activ = &activations{}
	w.verifier = &Verifier{Rail: w.provider, Ledger: w.provLed, QuoteKey: w.quoteKey.Public().(ed25519.PublicKey), Activate: w.activ.activate}
	return w
}

// service is the provider's payment service over w's rail, verifier and quote key (every subscription
// has 64 MiB).
func (w *world) service() *Service {
	w.t.Helper()
	svc, err := NewService(ServiceConfig{Rail: w.provider, Verifier: w.verifier, QuoteKey: w.quoteKey, Price: 1,
		SubQuota: func(context.Context, SubID) (uint32, bool) { return 64, true }})
	if err != nil {
		w.t.Fatal(err)
	}
	return svc
}

func openLedger(t testing.TB, name string) *Ledger {
	l, err := OpenLedger(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func (w *world) quote(sub byte, amount Nanos, expires time.Time) (*Quote, []byte) {
	w.t.Helper()
	q := &Quote{Rail: RailEVM, ChainID: w.chainID, Sub: SubID{sub}, Address: w.payee.Bytes(), Amount: amount,
		MiB: 64, Days: 30, Expires: expires}
	if err := q.Sign(w.quoteKey); err != nil {
		w.t.Fatal(err)
	}
	enc, err := q.Encode()
	if err != nil {
		w.t.Fatal(err)
	}
	return q, enc
}

// send makes and mines a raw transaction from the payer (for the bad-payment cases Pay would refuse to
// make).
func (w *world) send(to common.Address, value *big.Int, data []byte) TxID {
	w.t.Helper()
	ctx := context.Background()
	c := w.sim.Client()
	from := crypto.PubkeyToAddress(w.payerKey.PublicKey)
	nonce, err := c.PendingNonceAt(ctx, from)
	if err != nil {
		w.t.Fatal(err)
	}
	nonce = max(nonce, w.nextNonce)
	w.nextNonce = nonce + 1
	price, err := c.SuggestGasPrice(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	tx := types.NewTx(&types.LegacyTx{Nonce: nonce, To: &to, Value: value, Gas: 100_000, GasPrice: price, Data: data})
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(new(big.Int).SetUint64(w.chainID)), w.payerKey)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := c.SendTransaction(ctx, signed); err != nil {
		w.t.Fatal(err)
	}
	return TxID(signed.Hash())
}

func (w *world) mine(n int) {
	for range n {
		w.sim.Commit()
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPayVerifyHappyPath(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	q, enc := w.quote(1, 1_500_000_000, time.Now().Add(time.Hour)) // 1.5 IOTA
	bal0, err := w.payer.Balance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.verifier.Process(ctx, tx, enc); !errors.Is(err, ErrPending) {
		t.Fatalf("before a block: %v, want ErrPending", err)
	}
	w.mine(1)
	if _, err := w.verifier.Process(ctx, tx, enc); !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("1 confirmation of 2: %v, want ErrNotConfirmed", err)
	}
	if len(w.activ.calls) != 0 {
		t.Fatal("activated before confirmation")
	}
	w.mine(1)
	c, err := w.verifier.Process(ctx, tx, enc)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Fresh || c.Sub != q.Sub || len(w.activ.calls) != 1 || w.activ.calls[0].id != q.Sub {
		t.Fatalf("claim %+v, activations %+v", c, w.activ.calls)
	}
	if d := time.Until(c.PaidUntil); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Fatalf("paid until %v", c.PaidUntil)
	}
	// Seen twice: the same claim, no second activation.
	c2, err := w.verifier.Process(ctx, tx, enc)
	if err != nil || c2.Fresh || !c2.PaidUntil.Equal(c.PaidUntil) || len(w.activ.calls) != 1 {
		t.Fatalf("second process: %+v %v, %d activations", c2, err, len(w.activ.calls))
	}
	// Paying the same quote again is the same transaction, not a second payment.
	tx2, err := w.payer.Pay(ctx, q)
	if err != nil || tx2 != tx {
		t.Fatalf("second Pay: %s %v, want %s", tx2, err, tx)
	}
	bal1, _ := w.payer.Balance(ctx)
	spent := new(big.Int).Sub(bal0, bal1)
	if spent.Cmp(q.Amount.Wei()) < 0 || spent.Cmp(new(big.Int).Add(q.Amount.Wei(), oneIOTA)) > 0 {
		t.Fatalf("spent %s for a %s quote", FormatIOTA(spent), q.Amount)
	}
	got, _ := w.sim.Client().BalanceAt(ctx, w.payee, nil)
	if got.Cmp(q.Amount.Wei()) != 0 {
		t.Fatalf("payee has %s, want %s", FormatIOTA(got), q.Amount)
	}
}

func TestRenewalExtends(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	var untils []time.Time
	for i := range 2 {
		q, enc := w.quote(7, Nanos(1_000_000+i), time.Now().Add(time.Hour))
		tx, err := w.payer.Pay(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		w.mine(2)
		c, err := w.verifier.Process(ctx, tx, enc)
		if err != nil {
			t.Fatal(err)
		}
		untils = append(untils, c.PaidUntil)
	}
	if d := untils[1].Sub(untils[0]); d != 30*24*time.Hour {
		t.Fatalf("renewal extended by %v, want 30 days", d)
	}
}

func TestPaymentRefused(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	exp := time.Now().Add(time.Hour)
	q, enc := w.quote(2, 1_000_000_000, exp)

	// Underpayment: one nano short.
	under := w.send(w.payee, new(big.Int).Sub(q.Amount.Wei(), WeiPerNano), q.Calldata())
	// Payment to another address.
	other := w.send(crypto.PubkeyToAddress(mustKey(t).PublicKey), q.Amount.Wei(), q.Calldata())
	// Calldata naming another subscription's quote.
	q3, _ := w.quote(3, 1_000_000_000, exp)
	wrongSub := w.send(w.payee, q.Amount.Wei(), q3.Calldata())
	// (A reverted transaction: TestRevertedPayment.)
	w.mine(3)
	for _, c := range []struct {
		name string
		tx   TxID
		want error
	}{
		{"underpaid", under, ErrUnderpaid},
		{"other recipient", other, ErrWrongRecipient},
		{"another subscription", wrongSub, ErrNotThisQuote},
		{"unknown transaction", TxID{1, 2, 3}, ErrNotFound},
	} {
		if _, err := w.verifier.Process(ctx, c.tx, enc); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	if len(w.activ.calls) != 0 {
		t.Fatalf("activated: %+v", w.activ.calls)
	}
	if n, _ := w.provLed.Unactivated(ctx); len(n) != 0 {
		t.Fatalf("counted: %+v", n)
	}
}

// revertingPayee deploys a contract whose code always reverts and returns its address.
func (w *world) revertingPayee() common.Address {
	w.t.Helper()
	ctx := context.Background()
	c := w.sim.Client()
	from := crypto.PubkeyToAddress(w.payerKey.PublicKey)
	nonce, _ := c.PendingNonceAt(ctx, from)
	price, _ := c.SuggestGasPrice(ctx)
	// init code: return runtime code 0x60006000fd (PUSH1 0 PUSH1 0 REVERT).
	runtime := []byte{0x60, 0x00, 0x60, 0x00, 0xfd}
	initCode := append([]byte{0x64}, runtime...) // PUSH5 runtime
	initCode = append(initCode, 0x60, 0x00, 0x52, 0x60, 0x05, 0x60, 0x1b, 0xf3)
	tx := types.NewTx(&types.LegacyTx{Nonce: nonce, Value: big.NewInt(0), Gas: 200_000, GasPrice: price, Data: initCode})
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(new(big.Int).SetUint64(w.chainID)), w.payerKey)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := c.SendTransaction(ctx, signed); err != nil {
		w.t.Fatal(err)
	}
	w.mine(1)
	rc, err := c.TransactionReceipt(ctx, signed.Hash())
	if err != nil || rc.Status != 1 {
		w.t.Fatalf("deploy: %v %+v", err, rc)
	}
	code, _ := c.CodeAt(ctx, rc.ContractAddress, nil)
	if len(code) != len(runtime) {
		w.t.Fatalf("deployed code %x", code)
	}
	return rc.ContractAddress
}

func TestRevertedPayment(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	w.payee = w.revertingPayee()
	q, enc := w.quote(4, 1_000_000_000, time.Now().Add(time.Hour))
	tx := w.send(w.payee, q.Amount.Wei(), q.Calldata())
	w.mine(3)
	if _, err := w.verifier.Process(ctx, tx, enc); !errors.Is(err, ErrReverted) {
		t.Fatalf("%v, want ErrReverted", err)
	}
	if len(w.activ.calls) != 0 {
		t.Fatal("activated")
	}
}

func TestSameTxSecondSubscription(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	exp := time.Now().Add(time.Hour)
	q, enc := w.quote(5, 1_000_000_000, exp)
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	w.mine(2)
	if _, err := w.verifier.Process(ctx, tx, enc); err != nil {
		t.Fatal(err)
	}
	// The same hash offered with another subscription's quote: refused by the calldata check, and by
	// the counted table even if that check passed (same amount, same payee).
	_, enc6 := w.quote(6, 1_000_000_000, exp)
	if _, err := w.verifier.Process(ctx, tx, enc6); !errors.Is(err, ErrNotThisQuote) {
		t.Fatalf("second subscription: %v", err)
	}
	q6, _ := DecodeQuote(enc6)
	p := Payment{Tx: tx, Value: q6.Amount.Wei(), Block: 1}
	if _, err := w.provLed.Claim(ctx, tx, q6, p, time.Now()); !errors.Is(err, ErrAlreadyCounted) {
		t.Fatalf("ledger claim for a second subscription: %v", err)
	}
	if len(w.activ.calls) != 1 {
		t.Fatalf("%d activations", len(w.activ.calls))
	}
}

func TestCountedAcrossRestart(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	path := filepath.Join(t.TempDir(), "provider.db")
	led, err := OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	w.verifier.Ledger = led
	q, enc := w.quote(8, 1_000_000_000, time.Now().Add(time.Hour))
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	w.mine(2)
	// Crash between counting and activation: Activate fails.
	w.verifier.Activate = func(context.Context, SubID, time.Time, uint32) error { return errors.New("disk on fire") }
	if _, err := w.verifier.Process(ctx, tx, enc); err == nil {
		t.Fatal("activation error not reported")
	}
	led.Close()
	led, err = OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	w.verifier.Ledger = led
	w.verifier.Activate = w.activ.activate
	if n, err := w.verifier.Resume(ctx); err != nil || n != 1 {
		t.Fatalf("resume: %d %v", n, err)
	}
	if c, err := w.verifier.Process(ctx, tx, enc); err != nil || c.Fresh || !c.Activated {
		t.Fatalf("after restart: %+v %v", c, err)
	}
	if len(w.activ.calls) != 1 {
		t.Fatalf("%d activations, want 1", len(w.activ.calls))
	}
}

func TestOtherChainID(t *testing.T) {
	w := newWorld(t, withChainID(8822))
	ctx := ctxT(t)
	if w.chainID != 8822 {
		t.Fatalf("chain id %d", w.chainID)
	}
	q, enc := w.quote(9, 1_000_000_000, time.Now().Add(time.Hour))
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	w.mine(2)
	// A provider paid on chain 1337 whose endpoint is this 8822 chain.
	prov, err := NewEVM(EVMConfig{ChainID: simChainID, PayeeAddress: &w.payee, Retry: fastRetry()}, Endpoint{"8822", w.sim.Client()})
	if err != nil {
		t.Fatal(err)
	}
	w.verifier.Rail = prov
	if _, err := w.verifier.Process(ctx, tx, enc); !errors.Is(err, ErrWrongChain) {
		t.Fatalf("quote for 8822 at a 1337 provider: %v", err)
	}
	// A quote for 1337 checked against an endpoint serving 8822.
	q2 := *q
	q2.ChainID = simChainID
	q2.Sign(w.quoteKey)
	enc2, _ := q2.Encode()
	if _, err := w.verifier.Process(ctx, tx, enc2); !errors.Is(err, ErrWrongChain) {
		t.Fatalf("endpoint on another chain: %v", err)
	}
	// The payer refuses to pay a quote of another chain.
	if _, err := w.payer.Pay(ctx, &q2); !errors.Is(err, ErrWrongRail) {
		t.Fatalf("pay on the wrong chain: %v", err)
	}
	if len(w.activ.calls) != 0 {
		t.Fatal("activated")
	}
}

func TestExpiredQuote(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	q, enc := w.quote(10, 1_000_000_000, time.Now().Add(-time.Minute))
	if _, err := w.payer.Pay(ctx, q); !errors.Is(err, ErrQuoteExpired) {
		t.Fatalf("Pay of an expired quote: %v", err)
	}
	// Paid anyway (a payer whose clock is behind): mined after the expiry, refused.
	w.payer.cfg.Now = func() time.Time { return q.Expires.Add(-time.Hour) }
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	w.mine(2)
	if _, err := w.verifier.Process(ctx, tx, enc); !errors.Is(err, ErrPaidLate) {
		t.Fatalf("%v, want ErrPaidLate", err)
	}
	// A transaction the chain does not know: worth waiting for until NotFoundGrace after the expiry,
	// then refused for good (the subscriber is not told to wait forever).
	unknown := TxID{9, 9, 9}
	w.verifier.Now = func() time.Time { return q.Expires.Add(NotFoundGrace - time.Second) }
	if _, err := w.verifier.Process(ctx, unknown, enc); !errors.Is(err, ErrNotFound) || !Retryable(err) {
		t.Fatalf("unknown tx within the grace: %v, want ErrNotFound (retryable)", err)
	}
	w.verifier.Now = func() time.Time { return q.Expires.Add(NotFoundGrace + time.Second) }
	_, err = w.verifier.Process(ctx, unknown, enc)
	if !errors.Is(err, ErrPaidLate) || Retryable(err) {
		t.Fatalf("unknown tx after the grace: %v, want ErrPaidLate (final)", err)
	}
	svc := w.service()
	var re *RemoteError
	if _, err := svc.Submit(ctx, unknown, enc); !errors.As(err, &re) || re.Code != CodeRefused {
		t.Fatalf("Submit of an unknown tx after the grace: %v, want a refusal", err)
	}
	if len(w.activ.calls) != 0 {
		t.Fatal("activated")
	}
}

func TestEndpointDown(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	q, enc := w.quote(11, 1_000_000_000, time.Now().Add(time.Hour))
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	w.mine(2)
	// Down: nothing listens on the port.
	down := "http://127.0.0.1:" + itoa(testwait.FreePort(t))
	// Slow: accepts connections, never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	slow := "http://" + l.Addr().String()
	for _, url := range []string{down, slow} {
		var retries int
		cfg := EVMConfig{ChainID: w.chainID, PayeeAddress: &w.payee, Retry: Retry{Attempts: 3, Base: 10 * time.Millisecond, Max: 20 * time.Millisecond, CallTimeout: 300 * time.Millisecond},
			OnRetry: func(string, string, int, error) { retries++ }}
		e, err := DialEVM(ctx, cfg, url)
		if err != nil {
			t.Fatal(err)
		}
		// Alone, and beside a good endpoint: every endpoint must answer.
		e2, _ := NewEVM(cfg, Endpoint{"simulated", w.sim.Client()}, e.eps[0])
		for _, r := range []*EVM{e, e2} {
			retries = 0
			w.verifier.Rail = r
			_, err = w.verifier.Process(ctx, tx, enc)
			if !errors.Is(err, ErrEndpoint) || !Retryable(err) || retries != 2 {
				t.Fatalf("%s: %v (%d retries), want ErrEndpoint after 2 retries", url, err, retries)
			}
			t.Logf("%s: %v", url, err)
		}
		// The payer is told too, and nothing is recorded as sent.
		pcfg := cfg
		pcfg.Key, pcfg.Ledger = mustKey(t), openLedger(t, "p.db")
		pe, _ := DialEVM(ctx, pcfg, url)
		q2, _ := w.quote(12, 1_000_000_000, time.Now().Add(time.Hour))
		if _, err := pe.Pay(ctx, q2); !errors.Is(err, ErrEndpoint) {
			t.Fatalf("pay via %s: %v", url, err)
		}
		if _, _, ok, _ := pcfg.Ledger.SentTx(ctx, q2.Digest()); ok {
			t.Fatal("a transaction was recorded although nothing could be sent")
		}
		e.Close()
		pe.Close()
	}
	if len(w.activ.calls) != 0 {
		t.Fatal("activated")
	}
	// The good endpoint alone still works.
	w.verifier.Rail = w.provider
	if _, err := w.verifier.Process(ctx, tx, enc); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// TestEndpointsAgree serves the simulated chain over JSON-RPC on loopback too: both endpoints agree.
// A second chain with the same payer and genesis has the same transaction hash in another block: the
// endpoints disagree and nothing is counted.
func TestEndpointsAgree(t *testing.T) {
	port := testwait.FreePort(t)
	w := newWorld(t, withHTTP(port))
	ctx := ctxT(t)
	q, enc := w.quote(13, 1_000_000_000, time.Now().Add(time.Hour))
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	w.mine(2)
	cfg := EVMConfig{ChainID: w.chainID, PayeeAddress: &w.payee, Retry: fastRetry()}
	both, err := DialEVM(ctx, cfg, "http://127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer both.Close()
	both.eps = append([]Endpoint{{"in-process", w.sim.Client()}}, both.eps...)
	if _, err := both.Verify(ctx, tx, q); err != nil {
		t.Fatalf("two agreeing endpoints: %v", err)
	}
	// The twin chain: same genesis, same signed transaction, mined one block later.
	twin := newSim(t, crypto.PubkeyToAddress(w.payerKey.PublicKey))
	_, raw, _, _ := w.payLed.SentTx(ctx, q.Digest())
	var stx types.Transaction
	if err := stx.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	twin.Commit()
	if err := twin.Client().SendTransaction(ctx, &stx); err != nil {
		t.Fatal(err)
	}
	twin.Commit()
	twin.Commit()
	twin.Commit()
	liar, _ := NewEVM(cfg, Endpoint{"in-process", w.sim.Client()}, Endpoint{"twin", twin.Client()})
	w.verifier.Rail = liar
	if _, err := w.verifier.Process(ctx, tx, enc); !errors.Is(err, ErrDisagree) {
		t.Fatalf("disagreeing endpoints: %v", err)
	}
	if len(w.activ.calls) != 0 {
		t.Fatal("activated")
	}
}

func TestInsufficientFunds(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	q, _ := w.quote(14, 2000*1_000_000_000, time.Now().Add(time.Hour)) // 2000 IOTA, the wallet has 1000
	if _, err := w.payer.Pay(ctx, q); !errors.Is(err, ErrInsufficientFund) {
		t.Fatalf("%v", err)
	}
}
func addrOf(k *ecdsa.PrivateKey) common.Address { return crypto.PubkeyToAddress(k.PublicKey) }

func TestVerifierMetrics(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	q, enc := w.quote(30, 1_000_000_000, time.Now().Add(time.Hour))
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	w.verifier.Process(ctx, tx, enc) // pending
	w.mine(2)
	w.verifier.Process(ctx, tx, enc) // counted
	w.verifier.Process(ctx, tx, enc) // seen again
	_, enc2 := w.quote(31, 1_000_000_000, time.Now().Add(time.Hour))
	w.verifier.Process(ctx, tx, enc2) // refused
	c := &w.verifier.ctr
	if c.verified.Load() != 2 || c.fresh.Load() != 1 || c.retry.Load() != 1 || c.refused.Load() != 1 {
		t.Fatalf("counters %d %d %d %d", c.verified.Load(), c.fresh.Load(), c.retry.Load(), c.refused.Load())
	}
	if n := len(w.verifier.Collectors()); n != 5 {
		t.Fatalf("%d collectors", n)
	}
}

// TestUnsettledResume: a payment sent and not settled is found again for its subscription (a re-run
// resumes it rather than paying a new quote); settled, or for another subscription, it is not.
func TestUnsettledResume(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	if _, _, ok, err := w.payer.Unsettled(ctx, SubID{4}); ok || err != nil {
		t.Fatalf("before paying: ok %v err %v", ok, err)
	}
	q, _ := w.quote(4, 1_000_000_000, time.Now().Add(time.Hour))
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	got, gtx, ok, err := w.payer.Unsettled(ctx, SubID{4})
	if err != nil || !ok || gtx != tx || got.Digest() != q.Digest() {
		t.Fatalf("unsettled: %v %v %v, want tx %s and its quote", gtx, ok, err, tx)
	}
	if _, _, ok, _ := w.payer.Unsettled(ctx, SubID{5}); ok {
		t.Fatal("another subscription's payment was offered for resumption")
	}
	// Resuming pays nothing new: Pay of the stored quote returns the stored transaction.
	bal, _ := w.payer.Balance(ctx)
	if again, err := w.payer.Pay(ctx, got); err != nil || again != tx {
		t.Fatalf("resumed Pay: %s %v, want %s", again, err, tx)
	}
	w.mine(1)
	// bal was read before either was mined: one payment costs the amount and gas, two twice the amount.
	twice := new(big.Int).Mul(q.Amount.Wei(), big.NewInt(2))
	if bal2, _ := w.payer.Balance(ctx); new(big.Int).Sub(bal, bal2).Cmp(twice) >= 0 {
		t.Fatalf("balance fell by %s after the resumed Pay: paid twice", new(big.Int).Sub(bal, bal2))
	}
	if err := w.payer.Settle(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := w.payer.Unsettled(ctx, SubID{4}); ok {
		t.Fatal("a settled payment was offered for resumption")
	}
}

// TestCancelPending: a payment still pending after its quote expired is refused as paid late (not
// "pending" forever), and the subscriber's wallet cancels it with a same-nonce replacement: once mined,
// the replacement is on chain, the payment is not, and the wallet lost only gas. A mined payment
// cannot be cancelled (ErrMined).
func TestCancelPending(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	q, enc := w.quote(6, 1_000_000_000, time.Now().Add(time.Hour))
	tx, err := w.payer.Pay(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	// Not mined: pending until the grace after the expiry, then paid late.
	if _, err := w.verifier.Process(ctx, tx, enc); !errors.Is(err, ErrPending) {
		t.Fatalf("a pending payment: %v, want ErrPending", err)
	}
	w.verifier.Now = func() time.Time { return q.Expires.Add(NotFoundGrace + time.Second) }
	if _, err := w.verifier.Process(ctx, tx, enc); !errors.Is(err, ErrPaidLate) || Retryable(err) {
		t.Fatalf("pending after the grace: %v, want ErrPaidLate (final)", err)
	}
	before, err := w.payer.Balance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.payer.Cancel(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	w.mine(1)
	c := w.sim.Client()
	if rc, err := c.TransactionReceipt(ctx, common.Hash(rep)); err != nil || rc.Status != 1 {
		t.Fatalf("the replacement's receipt: %+v %v", rc, err)
	}
	if _, err := c.TransactionReceipt(ctx, common.Hash(tx)); err == nil {
		t.Fatal("the cancelled payment was mined")
	}
	after, _ := w.payer.Balance(ctx)
	if spent := new(big.Int).Sub(before, after); spent.Cmp(q.Amount.Wei()) >= 0 || spent.Sign() <= 0 {
		t.Fatalf("the wallet spent %s on the cancellation; want only gas (the payment is %s)", spent, q.Amount.Wei())
	}
	// A mined payment stands.
	q2, _ := w.quote(7, 1_000_000_000, time.Now().Add(time.Hour))
	tx2, err := w.payer.Pay(ctx, q2)
	if err != nil {
		t.Fatal(err)
	}
	w.mine(1)
	if _, err := w.payer.Cancel(ctx, tx2); !errors.Is(err, ErrMined) {
		t.Fatalf("cancel of a mined payment: %v, want ErrMined", err)
	}
}

// TestPayAndActivateCancelsRefused: the provider refuses a payment still pending after its quote
// expired (paid late); PayAndActivate then cancels it (a same-nonce replacement, progress
// "cancelled") and settles it, so the money is not spent when a block comes and a re-run does not
// resume it.
func TestPayAndActivateCancelsRefused(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	srv := p2ptest.LoopbackHost(t)
	raw, err := srv.Host().Peerstore().PrivKey(srv.ID()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	w.quoteKey = ed25519.PrivateKey(raw)
	w.verifier.QuoteKey = w.quoteKey.Public().(ed25519.PublicKey)
	svc := w.service()
	netID := tangle.DevNet.ID
	srv.HandleStream(Protocol(netID), svc.Serve)
	h := p2ptest.LoopbackHost(t)
	pid, err := h.ConnectAddr(ctx, srv.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	q, _ := w.quote(8, 1_000_000_000, time.Now().Add(time.Hour))
	w.verifier.Now = func() time.Time { return q.Expires.Add(NotFoundGrace + time.Second) }
	var replacement TxID
	tx, _, err := PayAndActivate(ctx, NewClient(h, pid, netID), w.payer, q, 10*time.Millisecond, func(p Progress) {
		if p.Stage == "cancelled" {
			replacement = p.Tx
		}
	})
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeRefused || replacement == (TxID{}) {
		t.Fatalf("PayAndActivate: %v (replacement %s), want a refusal and a cancellation", err, replacement)
	}
	w.mine(1)
	c := w.sim.Client()
	if rc, err := c.TransactionReceipt(ctx, common.Hash(replacement)); err != nil || rc.Status != 1 {
		t.Fatalf("the replacement's receipt: %+v %v", rc, err)
	}
	if _, err := c.TransactionReceipt(ctx, common.Hash(tx)); err == nil {
		t.Fatal("the refused payment was mined")
	}
	if _, _, open, _ := w.payer.Unsettled(ctx, q.Sub); open {
		t.Fatal("the refused payment is still offered for resumption")
	}
}
