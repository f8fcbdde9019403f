package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/tanglemail/tanglemail/internal/api"
)

// Blobs is the node's blob service as the web client sees it (protocol.md §13.7): mail carried by
// blobs that is not filed yet, and the recipient's consent to fetch a stranger's large mail.
type Blobs interface {
	PendingBlobs(ctx context.Context) ([]api.PendingBlob, error)
	// AcceptBlob consents to fetching the pending blob mail named by key; ErrNoSuchBlob if none.
	AcceptBlob(ctx context.Context, key string) error
}

// ErrNoSuchBlob: no pending blob mail has that key (404).
var ErrNoSuchBlob = errors.New("no pending blob mail with that key (GET /api/blobs lists them)")

func (s *Server) handleBlobs(w http.ResponseWriter, r *http.Request) {
	out := []api.PendingBlob{}
	if s.blobs != nil {
		l, err := s.blobs.PendingBlobs(r.Context())
		if err != nil {
			s.fail(w, r, "list pending blob mail", err)
			return
		}
		out = append(out, l...)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAcceptBlob(w http.ResponseWriter, r *http.Request) {
	if s.blobs == nil {
		writeError(w, http.StatusNotFound, ErrNoSuchBlob.Error())
		return
	}
	err := s.blobs.AcceptBlob(r.Context(), r.PathValue("key"))
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]bool{"accepted": true})
	case errors.Is(err, ErrNoSuchBlob):
		writeError(w, http.StatusNotFound, err.Error())
	default:
		s.fail(w, r, "accept a blob mail", err)
	}
}
