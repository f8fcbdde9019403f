package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Info is GET /gateway's answer.
type Info struct {
	Address string   `json:"address"` // the gateway's tanglemail address, <bech32>@tangle
	Domains []string `json:"domains"`
}

// ClaimAnswer is POST /claim's answer on success.
type ClaimAnswer struct {
	Address string `json:"address"` // local@domain
	Op      string `json:"op"`      // "claim" or "revoke"
}

// claimError is POST /claim's answer on refusal.
type claimError struct {
	Error string `json:"error"`
}

func (g *Gateway) serveInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Info{Address: g.cfg.Identity.Address().Mail(), Domains: g.claims.Domains()})
}

func (g *Gateway) serveClaim(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxClaimSize+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, claimError{"reading the request: " + err.Error()})
		return
	}
	c, err := DecodeClaim(body)
	if err == nil {
		err = g.claims.Apply(r.Context(), c, g.now())
	}
	if err != nil {
		// The reason may quote the requested address: only at debug level.
		g.log.Info("gateway: claim refused", "status", claimStatus(err))
		g.log.Debug("gateway: claim refused", "reason", err)
		writeJSON(w, claimStatus(err), claimError{err.Error()})
		return
	}
	op := "claim"
	if c.Op == OpRevoke {
		op = "revoke"
	}
	g.log.Info("gateway: claim accepted", "op", op)
	g.log.Debug("gateway: claim accepted", "op", op, "address", c.Addr(), "claimant", c.Claimant.String())
	writeJSON(w, http.StatusOK, ClaimAnswer{Address: c.Addr(), Op: op})
}

// claimStatus maps a refusal to its status code (protocol.md §15.1).
func claimStatus(err error) int {
	switch {
	case errors.Is(err, ErrClaimMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrClaimPolicy), errors.Is(err, ErrClaimRole), errors.Is(err, ErrClaimGateway):
		return http.StatusForbidden
	case errors.Is(err, ErrClaimTaken), errors.Is(err, ErrClaimReplayed):
		return http.StatusConflict
	case errors.Is(err, ErrClaimNone):
		return http.StatusNotFound
	case errors.Is(err, ErrClaimStale):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
