// Package web is the node's HTTP front door: the JSON API that the CLI (and later the web client) use.
// It is an adapter only: it translates HTTP requests into calls of the layers below, which it reaches
// through the small Backend interface, so it imports none of them.
//
// Implementation notes:
//   - The Thunderbird autoconfig document is served without authentication: it holds no secret.
//   - Every /api/ request is authenticated with the node's password, as HTTP Basic (any user name) or
//     "Authorization: Bearer <password>". The comparison is constant-time.
//   - Errors are JSON objects {"error": "..."} with a 4xx or 5xx status that says what is wrong.
//   - The server listens where it is told; the node refuses non-loopback addresses without TLS.
package web

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Backend is what the API needs of a node.
type Backend interface {
	// Status is the node's status as a JSON-marshallable value.
	Status() any
	// Peers lists connected peers as a JSON-marshallable value.
	Peers() any
	// ClientSettings says where mail clients reach the node (autoconfig).
	ClientSettings() ClientSettings
}

// Server serves the API.
type Server struct {
	backend  Backend
	password []byte
	log      *slog.Logger
	http     *http.Server
}

// New returns a server for backend, guarded by password.
func New(backend Backend, password string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{backend: backend, password: []byte(password), log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", s.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.backend.Status())
	}))
	mux.HandleFunc("GET /api/peers", s.auth(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.backend.Peers())
	}))
	// Thunderbird autoconfig: http://<host>/.well-known/autoconfig/mail/config-v1.1.xml, and the
	// autoconfig.<domain> form /mail/config-v1.1.xml.
	mux.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", s.serveAutoconfig)
	mux.HandleFunc("GET /mail/config-v1.1.xml", s.serveAutoconfig)
	mux.HandleFunc("/api/", s.auth(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path)
	}))
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Handler is the server's HTTP handler (for tests).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Serve serves on l until Close.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server.
func (s *Server) Close() error { return s.http.Close() }

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var given string
		if _, p, ok := r.BasicAuth(); ok {
			given = p
		} else if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			given = b
		}
		if len(s.password) == 0 || subtle.ConstantTimeCompare([]byte(given), s.password) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="tanglemail"`)
			writeError(w, http.StatusUnauthorized, "authentication required: use the node's password (printed at start, and in <data-dir>/password)")
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
