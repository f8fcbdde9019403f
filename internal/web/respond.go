package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/store"
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, api.Error{Error: msg})
}

// fail answers 500 for an error of the node; what says what failed ("list the folders"). The error
// goes to the log, never to the client. A request whose client went away gets no answer.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return
	}
	// The route, not the path: a path may hold an address (…/members/{address}) or a petname.
	s.log.Error("API request failed", "method", r.Method, "route", r.Pattern, "what", what, "err", err)
	writeError(w, http.StatusInternalServerError, "the node failed to "+what+"; nothing was changed (the node's log has details)")
}

// storeError answers for an error of the store: 404 for a missing folder or message, 500 otherwise.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNoMailbox):
		writeError(w, http.StatusNotFound, "no such folder (GET /api/folders lists them)")
	case errors.Is(err, store.ErrNoMessage):
		writeError(w, http.StatusNotFound, "no such message in this folder (it may have been moved or deleted)")
	default:
		s.fail(w, r, what, err)
	}
}

// isJSON reports whether a Content-Type is application/json (parameters such as charset allowed).
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// sameOrigin reports whether a request comes from the node's own origin (RFC 6454): its Origin
// header, if any, must be the request's scheme and Host; without one, Sec-Fetch-Site (Fetch
// Metadata), if any, must be same-origin or none. A request with neither is not from a browser page
// that could be tricked (browsers send Origin with every cross-origin POST, PUT, PATCH and DELETE).
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || u.Path != "" {
			return false
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, r.Host)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// decodeJSON reads the request body as one JSON value into v, refusing unknown fields. On error it
// has answered (400 or 413) and returns false.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeJSONFrom(w, r.Body, v, "the request body")
}

// decodeJSONFrom is decodeJSON for any reader; what names it in errors ("the request body").
func decodeJSONFrom(w http.ResponseWriter, body io.Reader, v any, what string) bool {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("trailing data")
		}
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", tooBig.Limit))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, what+" is empty: send a JSON object (see docs/api.md)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, http.StatusBadRequest, what+" is not valid JSON: it ends too early")
	case errors.As(err, &syntax):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s is not valid JSON (at byte %d): %v", what, syntax.Offset, syntax))
	case errors.As(err, &typ):
		if typ.Field == "" {
			writeError(w, http.StatusBadRequest, what+" must be a JSON object, not "+typ.Value)
		} else {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value))
		}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		writeError(w, http.StatusBadRequest, "unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field ")+" in "+what+" (see docs/api.md)")
	case err.Error() == "trailing data":
		writeError(w, http.StatusBadRequest, "the request body must hold exactly one JSON value")
	default:
		writeError(w, http.StatusBadRequest, "the request body is not valid JSON: "+err.Error())
	}
	return false
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "true or false"
	case "ptr":
		return "a value"
	}
	return "a number"
}

// folderParam parses the {id} of a folder path.
func folderParam(w http.ResponseWriter, r *http.Request) (store.MailboxID, bool) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("folder id %q is not a positive number (GET /api/folders lists the folders and their ids)", v))
		return 0, false
	}
	return store.MailboxID(id), true
}

// messageParam parses the {id} and {uid} of a message path.
func messageParam(w http.ResponseWriter, r *http.Request) (store.MailboxID, store.UID, bool) {
	id, ok := folderParam(w, r)
	if !ok {
		return 0, 0, false
	}
	uid, ok := uidParam(w, r)
	return id, uid, ok
}

// uidParam parses the {uid} of a message path.
func uidParam(w http.ResponseWriter, r *http.Request) (store.UID, bool) {
	v := r.PathValue("uid")
	u, err := strconv.ParseUint(v, 10, 32)
	if err != nil || u == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("message uid %q is not a number from 1 to 4294967295", v))
		return 0, false
	}
	return store.UID(u), true
}

// intQuery parses an optional integer query parameter in [lo, hi], def if absent.
func intQuery(w http.ResponseWriter, r *http.Request, name string, lo, hi, def int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %s=%q must be a number from %d to %d", name, v, lo, hi))
		return 0, false
	}
	return n, true
}

// pageQuery reads the paging parameters of a listing: limit (1..500, default def) and before (a UID).
// On a bad one it has answered 400 and ok is false.
func pageQuery(w http.ResponseWriter, r *http.Request, def int) (limit int, before store.UID, ok bool) {
	if limit, ok = intQuery(w, r, "limit", 1, 500, def); !ok {
		return 0, 0, false
	}
	before, ok = beforeQuery(w, r)
	return limit, before, ok
}

// beforeQuery parses the optional before=<uid> query parameter; 0 if absent.
func beforeQuery(w http.ResponseWriter, r *http.Request) (store.UID, bool) {
	v := r.URL.Query().Get("before")
	if v == "" {
		return 0, true
	}
	u, err := strconv.ParseUint(v, 10, 32)
	if err != nil || u == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter before=%q must be a message uid (a number from 1 to 4294967295)", v))
		return 0, false
	}
	return store.UID(u), true
}

// checkHost answers 421 (RFC 9110 §15.5.20) to a request whose Host is neither a loopback name or
// address nor one of Config.Hosts. The API listens on loopback only; a page on another site whose DNS
// name an attacker rebinds to 127.0.0.1 sends its own name as Host, and gets nothing — not even the
// answers that need no password. A request without Host (HTTP/1.0) is not from a browser page.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, "this node answers only at localhost or 127.0.0.1 (open http://127.0.0.1:<port>/ instead of "+strconv.Quote(r.Host)+")")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().IsLoopback()
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") { // RFC 6761 §6.3
		return true
	}
	for _, h := range s.hosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}
