package payment

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/ethclient"

	"github.com/tanglemail/tanglemail/internal/testwait"
)

// TestPayRetryNeverPaysTwice: the endpoint takes every question but refuses to relay the payment
// (eth_sendRawTransaction answers 503). Pay records the signed transaction, fails with a clear error,
// and paying the same quote again through a working endpoint sends that same transaction: one payment.
func TestPayRetryNeverPaysTwice(t *testing.T) {
	port := testwait.FreePort(t)
	w := newWorld(t, withHTTP(port))
	ctx := ctxT(t)
	target, _ := url.Parse("http://127.0.0.1:" + itoa(port))
	proxy := httputil.NewSingleHostReverseProxy(target)
	var refused int
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte("eth_sendRawTransaction")) {
			refused++
			http.Error(rw, "overloaded", http.StatusServiceUnavailable)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		proxy.ServeHTTP(rw, r)
	}))
	defer srv.Close()

	cfg := EVMConfig{ChainID: w.chainID, Key: w.payerKey, Ledger: w.payLed,
		Retry: Retry{Attempts: 3, Base: 10 * time.Millisecond, Max: 20 * time.Millisecond, CallTimeout: 5 * time.Second}}
	flaky, err := DialEVM(ctx, cfg, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer flaky.Close()
	q, enc := w.quote(20, 1_000_000_000, time.Now().Add(time.Hour))
	if _, err := flaky.Pay(ctx, q); err == nil || !errors.Is(err, ErrEndpoint) {
		t.Fatalf("pay through an endpoint that refuses to relay: %v", err)
	} else {
		t.Logf("told: %v", err)
	}
	if refused != 3 {
		t.Fatalf("%d send attempts, want 3 (retried with backoff)", refused)
	}
	recorded, _, ok, err := w.payLed.SentTx(ctx, q.Digest())
	if err != nil || !ok {
		t.Fatalf("nothing recorded: %v", err)
	}
	// Retry through the working endpoint: the recorded transaction, not a new one.
	good, err := ethclient.DialContext(ctx, target.String())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	retry, _ := NewEVM(cfg, Endpoint{"direct", good})
	tx, err := retry.Pay(ctx, q)
	if err != nil || tx != recorded {
		t.Fatalf("retry: %s %v, want %s", tx, err, recorded)
	}
	w.mine(2)
	if tx2, err := retry.Pay(ctx, q); err != nil || tx2 != tx {
		t.Fatalf("after mining: %s %v", tx2, err)
	}
	if _, err := w.verifier.Process(ctx, tx, enc); err != nil {
		t.Fatal(err)
	}
	got, _ := w.sim.Client().BalanceAt(ctx, w.payee, nil)
	if got.Cmp(q.Amount.Wei()) != 0 {
		t.Fatalf("payee received %s, want exactly one payment of %s", FormatIOTA(got), q.Amount)
	}
}
