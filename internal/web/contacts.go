package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/store"
)

// handleContacts is GET /api/contacts, sorted by petname (case-insensitively).
func (s *Server) handleContacts(w http.ResponseWriter, r *http.Request) {
	cs, err := s.store.Contacts(r.Context())
	if err != nil {
		s.fail(w, r, "read the contacts", err)
		return
	}
	out := make([]api.Contact, 0, len(cs))
	for _, c := range cs {
		out = append(out, api.Contact{Petname: c.Petname, Address: c.Address})
	}
	writeJSON(w, http.StatusOK, api.Contacts{Contacts: out})
}

// handleAddContact is POST /api/contacts: {"petname", "address"} → 201.
func (s *Server) handleAddContact(w http.ResponseWriter, r *http.Request) {
	var req api.AddContact
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Petname == nil || *req.Petname == "" {
		writeError(w, http.StatusBadRequest, `field "petname" is missing: the name you want to know this address by`)
		return
	}
	if req.Address == nil || *req.Address == "" {
		writeError(w, http.StatusBadRequest, `field "address" is missing: the contact's tm1…@tangle address`)
		return
	}
	pet := *req.Petname
	if msg := checkPetname(pet); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	addr, err := identity.ParseAddress(strings.TrimSpace(*req.Address))
	if err != nil {
		writeError(w, http.StatusBadRequest, `field "address": `+*req.Address+` is not a valid tangle address (tm1…@tangle): `+
			strings.TrimPrefix(err.Error(), "identity: "))
		return
	}
	c := api.Contact{Petname: pet, Address: addr.Mail()}
	switch err := s.store.AddContact(r.Context(), c.Petname, c.Address); {
	case errors.Is(err, store.ErrContactExists):
		writeError(w, http.StatusConflict, "the petname "+pet+" is already taken by another contact: choose another, or remove that contact first")
		return
	case errors.Is(err, store.ErrInvalidContact):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "store: "))
		return
	case err != nil:
		s.fail(w, r, "add the contact", err)
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

// handleRemoveContact is DELETE /api/contacts/{petname}.
func (s *Server) handleRemoveContact(w http.ResponseWriter, r *http.Request) {
	pet := r.PathValue("petname")
	switch err := s.store.RemoveContact(r.Context(), pet); {
	case errors.Is(err, store.ErrNoContact):
		writeError(w, http.StatusNotFound, "no contact has the petname "+pet)
	case err != nil:
		s.fail(w, r, "remove the contact", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
