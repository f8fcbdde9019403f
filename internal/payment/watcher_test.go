package payment

import (
	"context"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/testwait"
)

// TestBalanceWatcher: the watcher reads the payer's balance from the simulated chain, sees it fall
// after a payment, finds the address in a wallet file without the passphrase, and refuses an
// endpoint of another chain.
func TestBalanceWatcher(t *testing.T) {
	w := newWorld(t)
	ctx := ctxT(t)
	sim := Endpoint{Name: "simulated", Client: w.sim.Client()}
	payer := addrOf(w.payerKey)
	bw, err := NewBalanceWatcher(BalanceWatcherConfig{ChainID: w.chainID, Address: payer}, sim)
	if err != nil {
		t.Fatal(err)
	}
	if r := bw.Last(); r.Wei != nil || !r.CheckedAt.IsZero() || r.Err != nil {
		t.Fatalf("before the first read: %+v", r)
	}
	r, err := bw.Refresh(ctx)
	thousand := new(big.Int).Mul(big.NewInt(1000), oneIOTA)
	if err != nil || r.Wei.Cmp(thousand) != 0 || r.Address != payer || r.CheckedAt.IsZero() {
		t.Fatalf("first read: %+v %v", r, err)
	}
	w.send(w.payee, oneIOTA, nil)
	w.mine(1)
	if r, err = bw.Refresh(ctx); err != nil || r.Wei.Cmp(new(big.Int).Sub(thousand, oneIOTA)) >= 0 {
		t.Fatalf("after paying 1 IOTA: %+v %v", r, err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(bw.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 4 {
		t.Fatalf("%d metrics, %v", len(mfs), err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tanglemail_wallet_balance_iota" {
			if got := mf.GetMetric()[0].GetGauge().GetValue(); got < 998 || got >= 999 {
				t.Fatalf("tanglemail_wallet_balance_iota = %v", got)
			}
		}
	}

	// Watch-only from the wallet file: no passphrase needed, and no file yet is a clear error.
	path := filepath.Join(t.TempDir(), WalletFile)
	fw, err := NewBalanceWatcher(BalanceWatcherConfig{ChainID: w.chainID, WalletFile: path}, sim)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Refresh(ctx); !errors.Is(err, ErrNoWalletYet) {
		t.Fatalf("without a wallet file: %v", err)
	}
	WalletKDF.Time, WalletKDF.MemoryKiB = 1, 64
	if err := SaveWallet(path, w.payerKey, []byte("secret"), false); err != nil {
		t.Fatal(err)
	}
	if r, err := fw.Refresh(ctx); err != nil || r.Address != payer || r.Wei.Sign() <= 0 {
		t.Fatalf("from the encrypted wallet file: %+v %v", r, err)
	}

	// Another chain's endpoint is refused, not believed.
	other, _ := NewBalanceWatcher(BalanceWatcherConfig{ChainID: 8822, Address: payer}, sim)
	if r, err := other.Refresh(ctx); !errors.Is(err, ErrWrongChain) || r.Wei != nil {
		t.Fatalf("endpoint of another chain: %+v %v", r, err)
	}
	if _, err := NewBalanceWatcher(BalanceWatcherConfig{ChainID: w.chainID}, sim); err == nil {
		t.Fatal("a watcher without an address or wallet file")
	}
}

// flakyEndpoint is a JSON-RPC proxy to the simulated chain's HTTP server that can be taken down (503)
// or made to hang until the test ends.
type flakyEndpoint struct {
	url      string
	down     atomic.Bool
	hang     atomic.Bool
	requests atomic.Int64
}

func newFlakyEndpoint(t *testing.T, port int) *flakyEndpoint {
	target, _ := url.Parse("http://127.0.0.1:" + itoa(port))
	proxy := httputil.NewSingleHostReverseProxy(target)
	f := &flakyEndpoint{}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		switch {
		case f.hang.Load():
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		case f.down.Load():
			http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
		default:
			proxy.ServeHTTP(rw, r)
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	f.url = srv.URL
	return f
}

// TestBalanceWatcherEndpointDown: with the endpoint down the watcher reports the error and retries
// with backoff; once up it reads the balance; down again, it keeps the last good value beside the
// error; and a hanging endpoint never holds up Last.
func TestBalanceWatcherEndpointDown(t *testing.T) {
	port := testwait.FreePort(t)
	w := newWorld(t, withHTTP(port))
	ctx := ctxT(t)
	ep := newFlakyEndpoint(t, port)
	ep.down.Store(true)
	cfg := BalanceWatcherConfig{ChainID: w.chainID, Address: addrOf(w.payerKey), Interval: time.Hour,
		Backoff: Retry{Base: 5 * time.Millisecond, Max: 40 * time.Millisecond, CallTimeout: 10 * time.Second}}
	bw, err := DialBalanceWatcher(ctx, cfg, ep.url)
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bw.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}()

	// Down from the start: retried (the interval is an hour: only the backoff brings more reads).
	testwait.For(t, "three tries at a down endpoint", 30*time.Second, func() bool { return ep.requests.Load() >= 3 })
	r := bw.Last()
	if r.Wei != nil || !errors.Is(r.Err, ErrEndpoint) || !strings.Contains(r.Err.Error(), "wallet balance") {
		t.Fatalf("while down: %+v", r)
	}
	t.Logf("reported: %v", r.Err)

	// Up: the next retry (at most Backoff.Max later) reads the balance.
	ep.down.Store(false)
	testwait.For(t, "a good read after the endpoint came back", 30*time.Second, func() bool { return bw.Last().Wei != nil })
	good := bw.Last()
	if good.Err != nil || good.Wei.Cmp(new(big.Int).Mul(big.NewInt(1000), oneIOTA)) != 0 {
		t.Fatalf("after recovery: %+v", good)
	}

	// Down again: the last good value and when it was read stay, beside the error.
	ep.down.Store(true)
	r, err = bw.Refresh(ctx)
	if !errors.Is(err, ErrEndpoint) || !errors.Is(r.Err, ErrEndpoint) || r.Wei.Cmp(good.Wei) != 0 || !r.CheckedAt.Equal(good.CheckedAt) {
		t.Fatalf("down again: %+v %v", r, err)
	}

	// Hanging: a read in progress does not hold up Last.
	ep.hang.Store(true)
	before := ep.requests.Load()
	go bw.Refresh(runCtx)
	testwait.For(t, "a read hanging at the endpoint", 30*time.Second, func() bool { return ep.requests.Load() > before })
	lastDone := make(chan BalanceReading, 1)
	go func() { lastDone <- bw.Last() }()
	select {
	case r = <-lastDone:
		if r.Wei.Cmp(good.Wei) != 0 {
			t.Fatalf("while hanging: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Last waited for a hanging endpoint")
	}
	if (common.Address{}) == r.Address {
		t.Fatal("no address in the reading")
	}
}

// BenchmarkBalanceWatcher: Refresh (one eth_getBalance) against the simulated backend's in-process
// client, in reads/s, and Last, what every GET /api/status costs, in ns/op.
func BenchmarkBalanceWatcher(b *testing.B) {
	payer := mustKey(b)
	sim := newSim(b, addrOf(payer))
	bw, err := NewBalanceWatcher(BalanceWatcherConfig{ChainID: simChainID, Address: addrOf(payer)}, Endpoint{Name: "simulated", Client: sim.Client()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("Refresh", func(b *testing.B) {
		for b.Loop() {
			if _, err := bw.Refresh(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	})
	b.Run("Last", func(b *testing.B) {
		for b.Loop() {
			if bw.Last().Wei == nil {
				b.Fatal("no reading")
			}
		}
	})
}
