package web

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/testclock"
)

// login signs in and returns the session token from the Set-Cookie answer.
func (e *env) login() (string, *http.Cookie) {
	e.t.Helper()
	r := e.call("POST", "/api/login", api.Login{Password: testPassword}, noAuth).mustCode(e.t, 204)
	for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
		if c.Name == sessionCookie {
			return c.Value, c
		}
	}
	e.t.Fatalf("login set no %s cookie: %v", sessionCookie, r.hdr)
	return "", nil
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name   string
		body   any
		opts   []reqOpt
		code   int
		errHas string
	}{
		{"wrong password", map[string]string{"password": "nope"}, nil, 401, "wrong password"},
		{"empty password", map[string]string{"password": ""}, nil, 401, "wrong password"},
		{"missing field", map[string]string{}, nil, 400, `"password" is missing`},
		{"unknown field", map[string]string{"password": testPassword, "user": "x"}, nil, 400, `unknown field "user"`},
		{"not JSON", "password=" + testPassword, nil, 400, "not valid JSON"},
		{"not an object", `["x"]`, nil, 400, "must be a JSON object"},
		{"wrong type", `{"password": 5}`, nil, 400, `"password" must be a string`},
		{"two values", `{"password": "a"} {}`, nil, 400, "exactly one JSON value"},
		{"empty body", nil, nil, 400, "empty"},
		{"form", "password=" + testPassword, []reqOpt{withHeader("Content-Type", "application/x-www-form-urlencoded")}, 415, "application/json"},
		{"other origin", map[string]string{"password": testPassword}, []reqOpt{withHeader("Origin", "http://evil.example")}, 403, "cross-origin"},
		{"cross-site fetch", map[string]string{"password": testPassword}, []reqOpt{withHeader("Sec-Fetch-Site", "cross-site")}, 403, "cross-origin"},
		{"too large", `{"password": "` + strings.Repeat("a", maxBody) + `"}`, nil, 413, "larger than"},
		{"right", map[string]string{"password": testPassword}, nil, 204, ""},
		{"right with charset", map[string]string{"password": testPassword}, []reqOpt{withHeader("Content-Type", "application/json; charset=utf-8")}, 204, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := append([]reqOpt{noAuth}, c.opts...)
			r := e.call("POST", "/api/login", c.body, opts...).mustCode(t, c.code)
			if c.code == 204 {
				if !strings.Contains(r.hdr.Get("Set-Cookie"), sessionCookie+"=") {
					t.Fatalf("no cookie: %v", r.hdr)
				}
				return
			}
			if r.hdr.Get("Set-Cookie") != "" {
				t.Fatalf("cookie set on failure: %v", r.hdr)
			}
			if c.code == 401 && r.hdr.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			if msg := r.errMsg(t); !strings.Contains(msg, c.errHas) {
				t.Fatalf("error %q, want it to contain %q", msg, c.errHas)
			}
		})
	}
}

func TestSessionCookie(t *testing.T) {
	e := newEnv(t)
	token, c := e.login()
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure without TLS", c)
	}
	if c.MaxAge != int(sessionIdle/time.Second) {
		t.Fatalf("Max-Age %d", c.MaxAge)
	}
	if len(token) < 40 {
		t.Fatalf("token %q is short", token)
	}
	// Two logins, two sessions.
	if other, _ := e.login(); other == token {
		t.Fatal("two logins got the same token")
	}
	e.call("GET", "/api/me", nil, withCookie(token)).mustCode(t, 200)
	// A wrong Authorization header is not rescued by a good cookie.
	e.call("GET", "/api/me", nil, withCookie(token), withHeader("Authorization", "Bearer nope")).mustCode(t, 401)

	// Logout ends the session and clears the cookie.
	r := e.call("POST", "/api/logout", nil, withCookie(token)).mustCode(t, 204)
	if sc := r.hdr.Get("Set-Cookie"); !strings.Contains(sc, sessionCookie+"=;") || !strings.Contains(sc, "Max-Age=0") {
		t.Fatalf("logout Set-Cookie %q", sc)
	}
	e.call("GET", "/api/me", nil, withCookie(token)).mustCode(t, 401)
	e.call("POST", "/api/logout", nil, withCookie(token)).mustCode(t, 401)
}

func TestSecureCookieUnderTLS(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.hosts = []string{"node.example"} })
	req := httptest.NewRequest("POST", "https://node.example/api/login", strings.NewReader(`{"password":"`+testPassword+`"}`))
	req.TLS = &tls.ConnectionState{}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "https://node.example")
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	if w.Code != 204 || !strings.Contains(w.Header().Get("Set-Cookie"), "Secure") {
		t.Fatalf("status %d, Set-Cookie %q", w.Code, w.Header().Get("Set-Cookie"))
	}
	// Under TLS the origin must be https.
	req = httptest.NewRequest("POST", "https://node.example/api/login", strings.NewReader(`{"password":"`+testPassword+`"}`))
	req.TLS = &tls.ConnectionState{}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://node.example")
	w = httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, req)
	if w.Code != 403 {
		t.Fatalf("http origin under TLS: status %d", w.Code)
	}
}

func TestSessionExpiry(t *testing.T) {
	clk := testclock.New(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	e := newEnv(t, func(c *envConfig) { c.tune = func(s *Server) { s.now = clk.Now } })
	token, _ := e.login()

	// Used every 20 days, the session lives on; its cookie is set again once a day at most.
	for range 3 {
		clk.Advance(20 * 24 * time.Hour)
		r := e.call("GET", "/api/me", nil, withCookie(token)).mustCode(t, 200)
		if !strings.Contains(r.hdr.Get("Set-Cookie"), token) {
			t.Fatalf("cookie not refreshed after 20 days: %v", r.hdr)
		}
		r = e.call("GET", "/api/me", nil, withCookie(token)).mustCode(t, 200)
		if r.hdr.Get("Set-Cookie") != "" {
			t.Fatalf("cookie refreshed twice in a row: %v", r.hdr)
		}
	}
	// Unused for more than 30 days, it has ended.
	clk.Advance(sessionIdle + time.Second)
	e.call("GET", "/api/me", nil, withCookie(token)).mustCode(t, 401)
	if n := e.srv.sessions.count(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

func TestSessionLimit(t *testing.T) {
	var ss sessions
	ss.m = map[[32]byte]*session{}
	now := time.Now()
	first := ss.create(now)
	for i := range maxSessions {
		ss.create(now.Add(time.Duration(i+1) * time.Second))
	}
	if ss.count() != maxSessions {
		t.Fatalf("%d sessions", ss.count())
	}
	if ok, _ := ss.use(first, now.Add(time.Hour)); ok {
		t.Fatal("the oldest session was not ended")
	}
}

// TestCookieChanges checks the cross-site defences of cookie-authenticated changes.
func TestCookieChanges(t *testing.T) {
	e := newEnv(t)
	token, _ := e.login()
	body := api.Contact{Petname: "x", Address: newAddress(t)}
	cases := []struct {
		name string
		opts []reqOpt
		code int
	}{
		{"same origin reaches the handler", []reqOpt{withHeader("Origin", e.hs.URL)}, 409},
		{"other origin", []reqOpt{withHeader("Origin", "http://evil.example")}, 403},
		{"other port", []reqOpt{withHeader("Origin", strings.Replace(e.hs.URL, "127.0.0.1:", "127.0.0.1:1", 1))}, 403},
		{"null origin", []reqOpt{withHeader("Origin", "null")}, 403},
		{"https origin over http", []reqOpt{withHeader("Origin", strings.Replace(e.hs.URL, "http:", "https:", 1))}, 403},
		{"cross-site fetch", []reqOpt{withHeader("Sec-Fetch-Site", "cross-site")}, 403},
		{"same-site fetch", []reqOpt{withHeader("Sec-Fetch-Site", "same-site")}, 403},
		{"text/plain body", []reqOpt{withHeader("Origin", e.hs.URL), withHeader("Content-Type", "text/plain")}, 415},
		{"no content type", []reqOpt{withHeader("Origin", e.hs.URL), withHeader("Content-Type", "")}, 415},
	}
	// The contact exists, so a request that passes the checks gets the handler's 409.
	e.call("POST", "/api/contacts", body, withCookie(token), withHeader("Origin", e.hs.URL)).mustCode(t, 201)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := append([]reqOpt{withCookie(token)}, c.opts...)
			r := e.call("POST", "/api/contacts", body, opts...).mustCode(t, c.code)
			r.errMsg(t)
		})
	}
	// Reading with the cookie needs no origin. A change with the password from another origin is
	// refused too: a browser that has cached Basic credentials sends them with other sites' requests.
	// Without Origin and Sec-Fetch-Site (the CLI, scripts) the password is enough.
	e.call("GET", "/api/contacts", nil, withCookie(token), withHeader("Origin", "http://evil.example")).mustCode(t, 200)
	e.call("POST", "/api/conversations/"+strings.Repeat("ab", 16)+"/read", nil, withHeader("Origin", "http://evil.example")).mustCode(t, 403)
	e.call("DELETE", "/api/contacts/x", nil, withHeader("Sec-Fetch-Site", "cross-site")).mustCode(t, 403)
	e.call("DELETE", "/api/contacts/x", nil).mustCode(t, 204)
}

// TestRebindingHostRefused: a page whose DNS name was rebound to 127.0.0.1 names itself as Host; it
// gets 421 even where no password is needed (autoconfig names the user's address), while loopback
// names and addresses are served.
func TestRebindingHostRefused(t *testing.T) {
	e := newEnv(t)
	for _, host := range []string{"evil.example", "evil.example:4581", "127.0.0.1.evil.example", "localhost.evil.example", "10.0.0.1:4581"} {
		for _, path := range []string{"/.well-known/autoconfig/mail/config-v1.1.xml", "/api/login", "/"} {
			req := httptest.NewRequest("GET", "http://127.0.0.1"+path, nil)
			req.Host = host
			w := httptest.NewRecorder()
			e.srv.Handler().ServeHTTP(w, req)
			if w.Code != http.StatusMisdirectedRequest || strings.Contains(w.Body.String(), e.me) {
				t.Errorf("Host %s, %s: status %d, body %q", host, path, w.Code, w.Body)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:4581", "127.0.0.2", "localhost:4581", "LOCALHOST.", "app.localhost:1", "[::1]:4581", ""} {
		req := httptest.NewRequest("GET", "http://127.0.0.1/.well-known/autoconfig/mail/config-v1.1.xml", nil)
		req.Host = host
		w := httptest.NewRecorder()
		e.srv.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Errorf("Host %q: status %d, body %q", host, w.Code, w.Body)
		}
	}
}
