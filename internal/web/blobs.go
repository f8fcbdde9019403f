package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/tanglemail/tanglemail/internal/api"
)

// Blobs is the node's blob service as the web client sees it (protocol.md §13.7): mail carried by
// blobs that is not filed yet, the recipient's consent to fetch a stranger's large mail, and the
// sender's progress of its own.
type Blobs interface {
	PendingBlobs(ctx context.Context) ([]api.PendingBlob, error)
	// AcceptBlob consents to fetching the pending blob mail named by key; ErrNoSuchBlob if none.
	AcceptBlob(ctx context.Context, key string) error
	// BlobSends is the node's own large mail and its progress, newest first.
	BlobSends(ctx context.Context) ([]api.BlobSend, error)
}

// ErrNoSuchBlob: no pending blob mail has that key (404).
var ErrNoSuchBlob = errors.New("no pending blob mail with that key (GET /api/blobs lists them)")

func (s *Server) handleBlobs(w http.ResponseWriter, r *http.Request) {
	writeList(s, w, r, "list pending blob mail", Blobs.PendingBlobs)
}

// writeList answers with the list that list gives (an empty list without a blob service).
func writeList[T any](s *Server, w http.ResponseWriter, r *http.Request, what string, list func(Blobs, context.Context) ([]T, error)) {
	out := []T{}
	if s.blobs != nil {
		l, err := list(s.blobs, r.Context())
		if err != nil {
			s.fail(w, r, what, err)
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

// handleBlobSends is GET /api/blobs/sent: the progress of the user's own large mail.
func (s *Server) handleBlobSends(w http.ResponseWriter, r *http.Request) {
	writeList(s, w, r, "list large mail being sent", Blobs.BlobSends)
}
