package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/tanglemail/tanglemail/internal/api"
)

// Wallet is the node's payment wallet balance as the API refreshes it (POST /api/wallet/refresh;
// GET /api/status shows the last reading); nil: the endpoint answers 409 like ErrWalletOff.
type Wallet interface {
	// RefreshWallet reads the balance from the chain now. ErrWalletOff: no payment chain configured;
	// another error: the read failed (the status keeps the last good balance beside the error).
	RefreshWallet(ctx context.Context) (api.Wallet, error)
}

// ErrWalletOff is returned by RefreshWallet when the node watches no payment chain (409).
var ErrWalletOff = errors.New("wallet balance unknown: no payment chain configured (start the node with --payment-rpc <url> and --payment-chain-id)")

func (s *Server) handleWalletRefresh(w http.ResponseWriter, r *http.Request) {
	if s.wallet == nil {
		writeError(w, http.StatusConflict, ErrWalletOff.Error())
		return
	}
	st, err := s.wallet.RefreshWallet(r.Context())
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, st)
	case errors.Is(err, ErrWalletOff):
		writeError(w, http.StatusConflict, err.Error())
	default:
		// The chain's endpoint failed: a gateway error with what it said (no secret in it).
		writeError(w, http.StatusBadGateway, err.Error()+" (the status keeps the last balance read)")
	}
}
