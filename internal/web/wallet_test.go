package web

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/tanglemail/tanglemail/internal/api"
)

// fakeWallet answers RefreshWallet with its fields.
type fakeWallet struct {
	st    api.Wallet
	err   error
	calls int
}

func (f *fakeWallet) RefreshWallet(context.Context) (api.Wallet, error) {
	f.calls++
	return f.st, f.err
}

// TestWalletRefresh: POST /api/wallet/refresh answers the new reading, 409 without a payment chain
// (no Wallet, or ErrWalletOff), 502 when the chain's endpoint failed; it is a change (POST only, same
// origin only).
func TestWalletRefresh(t *testing.T) {
	fw := &fakeWallet{st: api.Wallet{Address: "0x00000000000000000000000000000000000000aa", ChainID: 1337,
		BalanceWei: "1500000000000000000", Balance: "1.5 IOTA", CheckedAt: "2026-12-06T03:00:00Z"}}
	e := newEnv(t, func(c *envConfig) { c.wallet = fw })
	var got api.Wallet
	e.call("POST", "/api/wallet/refresh", nil).mustCode(t, http.StatusOK).decode(t, &got)
	if got != fw.st || fw.calls != 1 {
		t.Fatalf("refresh: %+v (%d calls)", got, fw.calls)
	}
	e.call("GET", "/api/wallet/refresh", nil).mustCode(t, http.StatusMethodNotAllowed)
	e.call("POST", "/api/wallet/refresh", nil, withHeader("Origin", "https://evil.example")).mustCode(t, http.StatusForbidden)
	e.call("POST", "/api/wallet/refresh", nil, noAuth).mustCode(t, http.StatusUnauthorized)
	if fw.calls != 1 {
		t.Fatalf("refused requests reached the wallet: %d calls", fw.calls)
	}

	fw.err = errors.New("wallet balance: payment: JSON-RPC endpoint unreachable or failing: http://127.0.0.1:1: connection refused")
	e.call("POST", "/api/wallet/refresh", nil).mustCode(t, http.StatusBadGateway).mustErr(t, "unreachable")
	fw.err = ErrWalletOff
	e.call("POST", "/api/wallet/refresh", nil).mustCode(t, http.StatusConflict).mustErr(t, "--payment-rpc")
}

// TestWalletRefreshWithoutChain: a server without a Wallet says how to configure one.
func TestWalletRefreshWithoutChain(t *testing.T) {
	e := newEnv(t)
	e.call("POST", "/api/wallet/refresh", nil).mustCode(t, http.StatusConflict).mustErr(t, "no payment chain configured")
}
