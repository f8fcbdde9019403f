package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/tanglemail/tanglemail/internal/api"
)

// Storage is the node's storage provider as the API administers it (GET /api/storage, POST
// /api/storage/grants); nil: the endpoints answer 503.
type Storage interface {
	StorageStatus() api.StorageStatus
	// StorageGrant issues a one-time grant token; an *InvalidError is the caller's mistake (400).
	StorageGrant(ctx context.Context, req api.StorageGrantRequest) (api.StorageGrant, error)
}

// ErrStorageOff is returned by StorageGrant when the node runs no storage provider (409).
var ErrStorageOff = errors.New("this node runs no storage provider: start it with --storage")

func (s *Server) handleStorage(w http.ResponseWriter, r *http.Request) {
	if s.storage == nil {
		writeJSON(w, http.StatusOK, api.StorageStatus{Addrs: []string{}})
		return
	}
	st := s.storage.StorageStatus()
	if st.Addrs == nil {
		st.Addrs = []string{}
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleStorageGrant(w http.ResponseWriter, r *http.Request) {
	if s.storage == nil {
		writeError(w, http.StatusConflict, ErrStorageOff.Error())
		return
	}
	var req api.StorageGrantRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.QuotaMiB == 0 || req.Days == 0 {
		writeError(w, http.StatusBadRequest, `fields "quota_mib" and "days" must be positive`)
		return
	}
	g, err := s.storage.StorageGrant(r.Context(), req)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, g)
	case errors.Is(err, ErrStorageOff):
		writeError(w, http.StatusConflict, err.Error())
	case errors.As(err, new(*InvalidError)):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.fail(w, r, "issue a storage grant", err)
	}
}

// InvalidError is a request the backend refuses as invalid (400).
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }
