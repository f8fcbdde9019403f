// Package web is the node's HTTP front door: the JSON API of docs/api.md (used by the CLI and the web
// client), its server-sent event stream, the web client's static files (package ui, served at "/"
// under a strict Content-Security-Policy), and Thunderbird autoconfig. It
// is an adapter only: it translates HTTP requests into calls of the layers below — the mailbox store
// (internal/store), the chat service (the Chat interface, internal/chat's types) and the node's status
// (the Backend interface) — and never imports internal/node.
//
// What it owns:
//   - Authentication (auth.go): the node's password as "Authorization: Bearer" (RFC 6750 §2.1) or HTTP
//     Basic with any user name (RFC 7617), or a session cookie tm_session set by POST /api/login
//     (RFC 6265 §4.1: HttpOnly, SameSite=Strict, Path=/, Secure under TLS). Passwords are compared in
//     constant time after hashing both sides with SHA-256, so neither content nor length leaks.
//     Sessions are random 256-bit tokens kept in memory (a restart signs everyone out), looked up by
//     their SHA-256, and expire after 30 days unused.
//   - Cross-site request defence: a change (POST, PUT, PATCH, DELETE) that carries an Origin (RFC 6454
//     §7) must name the request's own scheme and Host, and one without Origin but with Sec-Fetch-Site
//     must say same-origin or none, whatever its credentials (a browser sends a session cookie, and
//     Basic credentials it has cached, with other sites' requests too); clients that send neither
//     header (the CLI, scripts) are not browsers. Bodies must be application/json (a type a cross-site form
//     cannot send without a CORS preflight, which this server never grants); the one exception, the
//     multipart/form-data of a mail with attachments, needs the node's own Origin or a Bearer
//     password (upload.go).
//   - Mail (mail.go, message.go, compose.go): folders and messages straight from *store.Store. Messages
//     are parsed with go-message (MIME, RFC 2045/2046; encoded words, RFC 2047); new mail is built as
//     an RFC 5322 §3.6 message (Date, From = the node's address, To, Cc, Bcc, Subject, Message-ID,
//     In-Reply-To/References, MIME-Version) with a text/plain; charset=utf-8 body in 7bit or
//     quoted-printable (multipart/mixed with the attachments, if any), and handed to store.Submit,
//     which files the Sent copy and enqueues it for the outbox in one transaction.
//   - Safe HTML (sanitize.go): the HTML part of a message goes through a bluemonday policy built for
//     mail (no active content, nothing that loads a remote resource) and is served with a sandboxing
//     Content-Security-Policy (CSP Level 3).
//   - The event stream (events.go), per the WHATWG HTML standard's server-sent events.
//
// Implementation notes:
//   - Routing: every /api/ path is registered once without a method; a small dispatcher answers 405
//     with a JSON error and an Allow header for other methods. Checks run in this order: security
//     headers, authentication (401), method (405), origin (403), content type (415), body size (413,
//     bodies are limited to 1 MiB, uploads to maxUploadBody), then the handler's own checks (400,
//     404, 409).
//   - Errors are JSON {"error": "..."} with a 4xx or 5xx status and a sentence that says what is wrong
//     and what to do. A 500 says only what failed; the details go to the log. Logs never hold message
//     content, passwords or session tokens.
//   - Locking: the server's only mutable state is the session table (one mutex). Handlers share nothing
//     else; each event stream owns its store listener, chat subscription and timers, and stops when its
//     request's context ends or the server closes (closing is a channel closed once by Close).
//   - Ordering: the event stream subscribes to the store before it sends hello, so no change committed
//     after hello is missed; store changes arrive in commit order (the store's bus guarantees it), and
//     mail events are sent in that order. Folder counts are sent at most every 250 ms, and always after
//     the mail events of the changes they reflect.
//   - A 2xx answer to a request that stores something is sent only after the store (or the chat
//     service) returned nil, which means it is on disk.
//   - The server listens where it is told; the node refuses non-loopback addresses without TLS.
package web

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/loginpenalty"
	"github.com/tanglemail/tanglemail/internal/store"
)

// Backend is what the API needs of a node besides its store and chat service.
type Backend interface {
	// Status is the node's status, GET /api/status.
	Status() api.Status
	// Peers lists the connected peers, GET /api/peers.
	Peers() []api.Peer
	// ClientSettings says where mail clients reach the node (autoconfig).
	ClientSettings() ClientSettings
	// Progress is the outbox's work in progress, the data of the event stream's progress event; nil if
	// there is none to report. It is called about ten times a second while event streams are open, so
	// it must be cheap.
	Progress() *api.Progress
	// Metrics are the node's counters and gauges for GET /metrics.
	Metrics() prometheus.Gatherer
}

// Config is what New needs.
type Config struct {
	Backend Backend      // required
	Store   *store.Store // required: the account's mailboxes, contacts and outbox
	Address string       // the node's address, tm1…@tangle: the From of mail sent through the API
	// RelayGateway is the Internet-mail gateway's address (…@tangle) when the node has one: compose
	// then accepts Internet recipients (protocol.md §15.4). Empty: only tangle recipients.
	RelayGateway string
	Chat         Chat    // nil: the chat endpoints answer 503
	Invites      Invites // nil: the invite endpoints answer 503
	Storage      Storage // nil: GET /api/storage says disabled, grants answer 409
	Blobs        Blobs   // nil: GET /api/blobs is empty, accepting answers 404
	Wallet       Wallet  // nil: POST /api/wallet/refresh answers 409
	Password     string  // the node's password; empty refuses every authenticated request
	// Penalty delays password checks (Basic, Bearer, POST /api/login) from sources that recently gave a
	// wrong password; the node shares one among its front doors. Nil: one of its own.
	Penalty *loginpenalty.Penalty
	Log     *slog.Logger // nil: discard
	// Client is the web client's files, served at "/" (index.html at the root); nil serves the
	// built-in client (package ui).
	Client fs.FS
	// Hosts are the host names (without port) this server answers to besides loopback ones
	// (localhost, *.localhost, 127.0.0.0/8, ::1). A request naming any other Host gets 421, so a page
	// whose DNS name was rebound to 127.0.0.1 cannot read even the unauthenticated answers
	// (autoconfig names the user's address).
	Hosts []string
}

// maxBody bounds request bodies (413 beyond).
const maxBody = 1 << 20

// Server serves the API.
type Server struct {
	backend  Backend
	store    *store.Store
	address  string
	relay    string // Config.RelayGateway
	chat     Chat
	invites  Invites
	storage  Storage
	blobs    Blobs
	wallet   Wallet
	secret   loginpenalty.Secret
	penalty  *loginpenalty.Penalty
	hosts    []string // Config.Hosts
	log      *slog.Logger
	http     *http.Server
	handler  http.Handler
	sessions sessions

	closing   chan struct{} // closed by Close: event streams end
	closeOnce sync.Once

	// Settings that tests change before serving.
	now           func() time.Time
	keepAlive     time.Duration // comment line on an idle event stream
	progressEvery time.Duration // polling of Backend.Progress while a stream is open
	foldersEvery  time.Duration // least time between two folders events of a stream
	onStreamEnd   func()        // called when an event stream's handler returns
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		backend:       cfg.Backend,
		store:         cfg.Store,
		address:       cfg.Address,
		relay:         cfg.RelayGateway,
		chat:          cfg.Chat,
		invites:       cfg.Invites,
		storage:       cfg.Storage,
		blobs:         cfg.Blobs,
		wallet:        cfg.Wallet,
		hosts:         cfg.Hosts,
		secret:        loginpenalty.NewSecret(cfg.Password),
		penalty:       cfg.Penalty,
		log:           log,
		closing:       make(chan struct{}),
		now:           time.Now,
		keepAlive:     15 * time.Second,
		progressEvery: 100 * time.Millisecond,
		foldersEvery:  250 * time.Millisecond,
	}
	if s.penalty == nil {
		s.penalty = loginpenalty.New(loginpenalty.Options{})
	}
	s.sessions.m = map[[32]byte]*session{}

	mux := http.NewServeMux()
	route := func(pattern string, e endpoint) { mux.Handle(pattern, s.apiHandler(e, false)) }

	mux.Handle("/api/login", s.apiHandler(endpoint{"POST": s.handleLogin}, true))
	route("/api/logout", endpoint{"POST": s.handleLogout})

	route("/api/status", endpoint{"GET": func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.backend.Status())
	}})
	route("/api/peers", endpoint{"GET": func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.backend.Peers())
	}})
	route("/api/me", endpoint{"GET": func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Me{Address: s.address})
	}})
	route("/api/qr", endpoint{"GET": s.handleQR})
	route("/metrics", endpoint{"GET": s.handleMetrics})

	route("/api/folders", endpoint{"GET": s.handleFolders})
	route("/api/folders/{id}/messages", endpoint{"GET": s.handleListMessages})
	route("/api/folders/{id}/messages/{uid}", endpoint{"GET": s.handleMessage, "DELETE": s.handleDeleteMessage})
	route("/api/folders/{id}/messages/{uid}/html", endpoint{"GET": s.handleMessageHTML})
	route("/api/folders/{id}/messages/{uid}/raw", endpoint{"GET": s.handleMessageRaw})
	route("/api/folders/{id}/messages/{uid}/attachments/{n}", endpoint{"GET": s.handleAttachment})
	route("/api/folders/{id}/messages/{uid}/flags", endpoint{"POST": s.handleFlags})
	route("/api/folders/{id}/messages/{uid}/move", endpoint{"POST": s.handleMove})
	mux.Handle("/api/messages", s.apiHandlerWith(endpoint{"POST": s.handleSend}, false, true))
	route("/api/outbox", endpoint{"GET": s.handleOutbox})

	route("/api/contacts", endpoint{"GET": s.handleContacts, "POST": s.handleAddContact})
	route("/api/contacts/{petname}", endpoint{"DELETE": s.handleRemoveContact})
	route("/api/invite", endpoint{"GET": s.invitesOnly(s.handleInvite)})
	route("/api/join", endpoint{"POST": s.invitesOnly(s.handleJoin)})

	route("/api/conversations", endpoint{"GET": s.chatOnly(s.handleConversations), "POST": s.chatOnly(s.handleNewConversation)})
	route("/api/conversations/{id}", endpoint{"GET": s.chatOnly(s.handleConversation), "PATCH": s.chatOnly(s.handleRename)})
	route("/api/conversations/{id}/members", endpoint{"POST": s.chatOnly(s.handleAddMember)})
	route("/api/conversations/{id}/members/{address}", endpoint{"DELETE": s.chatOnly(s.handleRemoveMember)})
	route("/api/conversations/{id}/leave", endpoint{"POST": s.chatOnly(s.conversationAction("leave the group", func(ctx context.Context, id string) error { return s.chat.Leave(ctx, id) }))})
	route("/api/conversations/{id}/messages", endpoint{"GET": s.chatOnly(s.handleHistory), "POST": s.chatOnly(s.handleChatSend)})
	route("/api/conversations/{id}/read", endpoint{"POST": s.chatOnly(s.conversationAction("mark the conversation read", func(ctx context.Context, id string) error { return s.chat.MarkRead(ctx, id) }))})
	route("/api/conversations/{id}/typing", endpoint{"POST": s.chatOnly(s.conversationAction("send the typing notice", func(ctx context.Context, id string) error { return s.chat.Typing(ctx, id) }))})

	route("/api/events", endpoint{"GET": s.handleEvents})
	route("/api/storage", endpoint{"GET": s.handleStorage})
	route("/api/storage/grants", endpoint{"POST": s.handleStorageGrant})
	route("/api/blobs/sent", endpoint{"GET": s.handleBlobSends})
	route("/api/blobs", endpoint{"GET": s.handleBlobs})
	route("/api/blobs/{key}/accept", endpoint{"POST": s.handleAcceptBlob})
	route("/api/wallet/refresh", endpoint{"POST": s.handleWalletRefresh})

	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+r.URL.Path+" (see docs/api.md)")
	}
	mux.Handle("/api/", s.apiHandler(endpoint{"*": notFound}, false))
	mux.Handle("/api", s.apiHandler(endpoint{"*": notFound}, false))

	// Thunderbird autoconfig: http://<host>/.well-known/autoconfig/mail/config-v1.1.xml, and the
	// autoconfig.<domain> form /mail/config-v1.1.xml.
	mux.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", s.serveAutoconfig)
	mux.HandleFunc("GET /mail/config-v1.1.xml", s.serveAutoconfig)

	mux.Handle("/", s.clientHandler(cfg.Client))

	s.handler = s.checkHost(mux)
	s.http = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	s.http.RegisterOnShutdown(s.stopStreams)
	return s
}

// Handler is the server's HTTP handler (for tests, and for serving it elsewhere).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on l until Close.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server: listeners and connections are closed and event streams end.
func (s *Server) Close() error {
	s.stopStreams()
	return s.http.Close()
}

func (s *Server) stopStreams() { s.closeOnce.Do(func() { close(s.closing) }) }

// endpoint maps methods to handlers; "*" takes every method.
type endpoint map[string]http.HandlerFunc

func (e endpoint) allow() string {
	var ms []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		if e[m] != nil {
			ms = append(ms, m)
		}
	}
	return strings.Join(ms, ", ")
}

// apiHandler wraps an API endpoint with the checks every API request goes through, in the order the
// package notes give. public skips authentication (POST /api/login only).
func (s *Server) apiHandler(e endpoint, public bool) http.Handler {
	return s.apiHandlerWith(e, public, false)
}

// apiHandlerWith is apiHandler; uploads lets the endpoint take multipart/form-data bodies of up to
// maxUploadBody (upload.go), besides JSON.
func (s *Server) apiHandlerWith(e endpoint, public, uploads bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer s.recoverPanic(w, r)
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")

		if !public {
			if ok, _ := s.authenticate(w, r); !ok {
				s.unauthorized(w, r)
				return
			}
		}
		f := e[r.Method]
		if f == nil {
			f = e["*"]
		}
		if f == nil {
			h.Set("Allow", e.allow())
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; use "+e.allow())
			return
		}
		if changes(r.Method) {
			// Whatever the credentials: a browser may have cached Basic credentials too, and would
			// send them with another site's request.
			if !sameOrigin(r) {
				writeError(w, http.StatusForbidden, "cross-origin request refused: changes must come from the node's own pages")
				return
			}
			limit := int64(maxBody)
			switch ct := r.Header.Get("Content-Type"); {
			case uploads && isMultipartForm(ct):
				if !uploadAllowed(r) {
					writeError(w, http.StatusForbidden, "a multipart/form-data body must come from the node's own pages (with their Origin) or carry the password as a Bearer token")
					return
				}
				limit = maxUploadBody
			case r.ContentLength != 0 && !isJSON(ct):
				msg := "the request body must be JSON, sent with Content-Type: application/json"
				if uploads {
					msg += ", or multipart/form-data with attachments (docs/api.md)"
				}
				writeError(w, http.StatusUnsupportedMediaType, msg)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		} else {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		f(w, r)
	})
}

// recoverPanic turns a panic of a handler (a bug) into a logged error and a JSON 500, instead of a
// dropped connection. http.ErrAbortHandler passes through: it is how a handler aborts on purpose.
func (s *Server) recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.log.Error("API handler panicked", "method", r.Method, "route", r.Pattern, "panic", v, "stack", string(debug.Stack()))
	writeError(w, http.StatusInternalServerError, "the node failed to answer this request (the node's log has details)")
}

// changes reports whether a request with this method may change something.
func changes(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS":
		return false
	}
	return true
}
