package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/loginpenalty"
)

// Session cookie (RFC 6265 §4.1).
const (
	sessionCookie = "tm_session"
	sessionIdle   = 30 * 24 * time.Hour // a session unused this long has ended
	// cookieRefresh is how often an active session's cookie is set again, so that the browser keeps it
	// as long as the node does (its Max-Age counts from the last refresh).
	cookieRefresh = 24 * time.Hour
	maxSessions   = 1000 // the oldest is ended when a login would exceed this
)

// sessions is the in-memory session table. Tokens are 32 random bytes; the table holds only their
// SHA-256, so a lookup's timing says nothing about the tokens it holds.
type sessions struct {
	mu sync.Mutex
	m  map[[32]byte]*session
}

type session struct {
	used      time.Time // last request
	cookieSet time.Time // last Set-Cookie
}

// create starts a session and returns its token.
func (ss *sessions) create(now time.Time) string {
	var b [32]byte
	rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var oldest [32]byte
	var oldestUsed time.Time
	for k, v := range ss.m {
		if now.Sub(v.used) > sessionIdle {
			delete(ss.m, k)
			continue
		}
		if oldestUsed.IsZero() || v.used.Before(oldestUsed) {
			oldest, oldestUsed = k, v.used
		}
	}
	if len(ss.m) >= maxSessions {
		delete(ss.m, oldest)
	}
	ss.m[sha256.Sum256([]byte(token))] = &session{used: now, cookieSet: now}
	return token
}

// use looks a token up and marks the session used; refresh says whether its cookie is due to be set
// again.
func (ss *sessions) use(token string, now time.Time) (ok, refresh bool) {
	k := sha256.Sum256([]byte(token))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	v := ss.m[k]
	if v == nil {
		return false, false
	}
	if now.Sub(v.used) > sessionIdle {
		delete(ss.m, k)
		return false, false
	}
	v.used = now
	if now.Sub(v.cookieSet) > cookieRefresh {
		v.cookieSet = now
		refresh = true
	}
	return true, refresh
}

// alive reports whether a token names a live session, without marking it used (an open event stream
// checks it, so that signing out, or the session expiring, ends the stream).
func (ss *sessions) alive(token string, now time.Time) bool {
	k := sha256.Sum256([]byte(token))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	v := ss.m[k]
	return v != nil && now.Sub(v.used) <= sessionIdle
}

func (ss *sessions) end(token string) {
	k := sha256.Sum256([]byte(token))
	ss.mu.Lock()
	delete(ss.m, k)
	ss.mu.Unlock()
}

func (ss *sessions) count() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

// checkPassword compares a given password with the node's in constant time (both sides are hashed
// first, so the comparison takes the same time whatever the given password's length), after the
// failed-login penalty's wait for the request's source. A request whose client goes during the wait
// fails.
func (s *Server) checkPassword(r *http.Request, given string) bool {
	ok, err := s.penalty.Attempt(r.Context(), "http", loginpenalty.SourceOfHostPort(r.RemoteAddr), given, s.secret.Matches(given))
	return ok && err == nil
}

// authenticate checks a request's credentials: the password as Bearer or Basic, or a session cookie.
// cookie reports that the session cookie was what authenticated it.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (ok, cookie bool) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		if _, p, ok := r.BasicAuth(); ok {
			return s.checkPassword(r, p), false
		}
		if scheme, tok, found := strings.Cut(auth, " "); found && strings.EqualFold(scheme, "Bearer") {
			return s.checkPassword(r, strings.TrimSpace(tok)), false
		}
		return false, false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return false, false
	}
	ok, refresh := s.sessions.use(c.Value, s.now())
	if ok && refresh {
		s.setSessionCookie(w, r, c.Value)
	}
	return ok, ok
}

// unauthorized answers 401. The challenge is Basic for a browser that navigates to an API URL (it
// then asks for the password), and Bearer for scripts and the web client's fetch calls, for which a
// browser must not pop up a password dialog.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	challenge := `Basic realm="tanglemail", charset="UTF-8"`
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" && mode != "navigate" {
		challenge = `Bearer realm="tanglemail"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeError(w, http.StatusUnauthorized, "authentication required: use the node's password (printed at start, and in <data-dir>/password), or sign in")
}

func (s *Server) setSessionCookie(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    token,
		Path:     "/",
		MaxAge:   int(sessionIdle / time.Second),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

// handleLogin is POST /api/login: {"password": "…"} → 204 and a session cookie.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req api.LoginRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if req.Password == nil {
		writeError(w, http.StatusBadRequest, `field "password" is missing: send {"password": "<the node's password>"}`)
		return
	}
	if !s.checkPassword(r, *req.Password) {
		s.log.Warn("failed API login", "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="tanglemail"`) // RFC 9110 §15.5.2: a 401 has one
		writeError(w, http.StatusUnauthorized, "wrong password: it is printed when the node starts, and kept in <data-dir>/password")
		return
	}
	token := s.sessions.create(s.now())
	s.setSessionCookie(w, r, token)
	s.log.Info("API login", "remote", r.RemoteAddr)
	w.WriteHeader(http.StatusNoContent)
}

// handleLogout is POST /api/logout: the session of the request's cookie ends, and the cookie is
// removed.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		s.sessions.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	w.WriteHeader(http.StatusNoContent)
}
