package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/invite"
	"github.com/tanglemail/tanglemail/internal/store"
)

// Invites makes and follows invites (protocol.md §11); the node implements it.
type Invites interface {
	// Invite is this node's invite; name, if not empty, is the petname it suggests for the user.
	Invite(name string) (api.Invite, error)
	// Join dials the invite's peers and adds the inviter as a contact (petname empty: the invite's
	// suggestion). Its errors are those of node.Join: invite.Err* and store.ErrContact*/ErrInvalidContact.
	Join(ctx context.Context, invite, petname string) (api.Joined, error)
}

func (s *Server) invitesOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.invites == nil {
			writeError(w, http.StatusServiceUnavailable, "invites are not available on this node")
			return
		}
		h(w, r)
	}
}

// handleInvite is GET /api/invite[?name=<suggested petname>].
func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request) {
	inv, err := s.invites.Invite(r.URL.Query().Get("name"))
	if errors.Is(err, invite.ErrInvalid) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		s.fail(w, r, "make the invite", err)
		return
	}
	writeJSON(w, http.StatusOK, inv)
}

// handleJoin is POST /api/join {"invite", "petname"?} → 200 api.Joined.
func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req api.Join
	if !decodeJSON(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Invite) == "" {
		writeError(w, http.StatusBadRequest, `field "invite" is missing: the tanglemail:invite?… link a friend gave you`)
		return
	}
	if pet := req.Petname; pet != "" {
		if msg := checkPetname(pet); msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
	}
	res, err := s.invites.Join(r.Context(), req.Invite, req.Petname)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.Is(err, invite.ErrNotInvite), errors.Is(err, invite.ErrInvalid), errors.Is(err, invite.ErrVersion),
		errors.Is(err, invite.ErrWrongNetwork), errors.Is(err, invite.ErrOwnInvite), errors.Is(err, store.ErrInvalidContact):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrContactExists):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, invite.ErrUnreachable):
		writeError(w, http.StatusBadGateway, err.Error())
	case r.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, "the request ended before the node could dial the invite's peers")
	default:
		s.fail(w, r, "join by the invite", err)
	}
}

// checkPetname says what is wrong with a petname a user chose, or "" if nothing.
func checkPetname(pet string) string {
	if pet != strings.TrimSpace(pet) || len(pet) > 200 || strings.Contains(pet, "@") || checkText("petname", pet, 200, true) != "" {
		return `field "petname" must be 1 to 200 bytes of one-line text, without an @ or surrounding spaces`
	}
	if _, err := identity.ParseAddress(pet); err == nil {
		return `field "petname" must not be an address: choose a name`
	}
	return ""
}
