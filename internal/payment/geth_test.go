package payment

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
)

// gethBinary finds geth on PATH or in $(go env GOPATH)/bin, where .ci/run installs it. Without it the
// test is skipped with the command to install it, except under CI=true, where it fails.
func gethBinary(t testing.TB) string {
	if p, err := exec.LookPath("geth"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "geth")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "geth not found on PATH or in $(go env GOPATH)/bin: install it with `go install github.com/ethereum/go-ethereum/cmd/geth@<go-ethereum version in go.mod>` (.ci/run does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// gethDev is a running `geth --dev --dev.period 1` on loopback.
type gethDev struct {
	url   string
	rpc   *rpc.Client
	cl    *ethclient.Client
	stder *bytes.Buffer
}

func startGethDev(t testing.TB) *gethDev {
	bin := gethBinary(t)
	httpPort, authPort := freePort(t), freePort(t)
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--dev", "--dev.period", "1",
		"--datadir", t.TempDir(), "--ipcdisable", "--nodiscover", "--maxpeers", "0", "--port", "0",
		"--http", "--http.addr", "127.0.0.1", "--http.port", strconv.Itoa(httpPort), "--http.api", "eth,net,web3",
		"--authrpc.addr", "127.0.0.1", "--authrpc.port", strconv.Itoa(authPort), "--verbosity", "2")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("geth output:\n%s", logs.String())
		}
	})
	g := &gethDev{url: "http://127.0.0.1:" + strconv.Itoa(httpPort), stder: &logs}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := rpc.Dial(g.url)
		if err == nil {
			g.rpc, g.cl = c, ethclient.NewClient(c)
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = g.cl.ChainID(cctx)
			ccancel()
			if err == nil {
				break
			}
			c.Close()
		}
		select {
		case err := <-exited:
			t.Fatalf("geth exited: %v\n%s", err, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("geth --dev did not answer on %s within 60 s: %v", g.url, err)
		}
	}
	t.Cleanup(func() { g.rpc.Close() })
	return g
}

// fund sends value from geth's unlocked dev account to a and waits until it is there.
func (g *gethDev) fund(t testing.TB, a common.Address, value *big.Int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var accts []common.Address
	if err := g.rpc.CallContext(ctx, &accts, "eth_accounts"); err != nil || len(accts) == 0 {
		t.Fatalf("geth dev account: %v %v", accts, err)
	}
	var h common.Hash
	if err := g.rpc.CallContext(ctx, &h, "eth_sendTransaction", map[string]any{
		"from": accts[0], "to": a, "value": (*hexutil.Big)(value)}); err != nil {
		t.Fatalf("funding: %v", err)
	}
	for {
		bal, err := g.cl.BalanceAt(ctx, a, nil)
		if err == nil && bal.Cmp(value) >= 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("funding did not arrive: %v %v", bal, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestGethDevPayment pays and verifies on a real geth --dev chain (a block a second): nothing is
// activated before N confirmations, then exactly once.
func TestGethDevPayment(t *testing.T) {
	g := startGethDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	payerKey := mustKey(t)
	g.fund(t, crypto.PubkeyToAddress(payerKey.PublicKey), new(big.Int).Mul(big.NewInt(10), oneIOTA))
	id, err := g.cl.ChainID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	payee := crypto.PubkeyToAddress(mustKey(t).PublicKey)
	_, quoteKey, _ := ed25519.GenerateKey(nil)
	payer, err := DialEVM(ctx, EVMConfig{ChainID: id.Uint64(), Key: payerKey, Ledger: openLedger(t, "payer.db")}, g.url)
	if err != nil {
		t.Fatal(err)
	}
	defer payer.Close()
	prov, err := DialEVM(ctx, EVMConfig{ChainID: id.Uint64(), PayeeAddress: &payee, Confirmations: 3}, g.url)
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
	g.fund(b, crypto.PubkeyToAddress(payerKey.PublicKey), new(big.Int).Mul(big.NewInt(100), oneIOTA))
	id, _ := g.cl.ChainID(ctx)
	payee := crypto.PubkeyToAddress(mustKey(b).PublicKey)
	_, quoteKey, _ := ed25519.GenerateKey(nil)
	payer, _ := DialEVM(ctx, EVMConfig{ChainID: id.Uint64(), Key: payerKey, Ledger: openLedger(b, "payer.db")}, g.url)
	prov, _ := DialEVM(ctx, EVMConfig{ChainID: id.Uint64(), PayeeAddress: &payee, Confirmations: 3}, g.url)
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
