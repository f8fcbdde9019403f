package web

import (
	"bytes"
	"encoding/xml"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

func TestAuth(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		opt  reqOpt
		code int
	}{
		{"none", noAuth, http.StatusUnauthorized},
		{"wrong basic", func(r *http.Request) { r.SetBasicAuth("x", "nope") }, http.StatusUnauthorized},
		{"prefix of password", func(r *http.Request) { r.SetBasicAuth("x", testPassword[:5]) }, http.StatusUnauthorized},
		{"password with suffix", withHeader("Authorization", "Bearer "+testPassword+"x"), http.StatusUnauthorized},
		{"unknown scheme", withHeader("Authorization", "Digest "+testPassword), http.StatusUnauthorized},
		{"empty bearer", withHeader("Authorization", "Bearer "), http.StatusUnauthorized},
		{"unknown cookie", withCookie("not-a-session"), http.StatusUnauthorized},
		{"basic", func(r *http.Request) { r.SetBasicAuth("anyone", testPassword) }, http.StatusOK},
		{"bearer", withHeader("Authorization", "Bearer "+testPassword), http.StatusOK},
		{"bearer lower case", withHeader("Authorization", "bearer "+testPassword), http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.call("GET", "/api/status", nil, c.opt).mustCode(t, c.code)
			if c.code == http.StatusOK {
				var body api.Status
				r.decode(t, &body)
				if body.P2P.Blocks != 7 {
					t.Fatalf("body %v", body)
				}
				return
			}
			if msg := r.errMsg(t); !strings.Contains(msg, "password") {
				t.Fatalf("error %q does not say what to do", msg)
			}
			if r.hdr.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestEmptyPasswordRefusesAll(t *testing.T) {
	srv := New(Config{Backend: &fakeBackend{}, Password: "", Penalty: penaltytest.Instant()})
	for _, auth := range []string{"Bearer ", "Basic Og=="} {
		req := httptest.NewRequest("GET", "http://127.0.0.1/api/status", nil)
		req.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("%q: status %d", auth, w.Code)
		}
	}
}

func TestChallenge(t *testing.T) {
	e := newEnv(t)
	// A page navigation gets Basic (the browser asks for the password); fetch calls of the web client
	// get Bearer, for which browsers show no dialog.
	r := e.call("GET", "/api/me", nil, noAuth, withHeader("Sec-Fetch-Mode", "navigate")).mustCode(t, 401)
	if !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("navigation challenge %q", r.hdr.Get("WWW-Authenticate"))
	}
	r = e.call("GET", "/api/me", nil, noAuth, withHeader("Sec-Fetch-Mode", "cors")).mustCode(t, 401)
	if !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Bearer ") {
		t.Fatalf("fetch challenge %q", r.hdr.Get("WWW-Authenticate"))
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/api/nope", 404, ""},
		{"GET", "/api", 404, ""},
		{"GET", "/api/folders/", 404, ""},
		{"DELETE", "/api/status", 405, "GET"},
		{"POST", "/api/folders", 405, "GET"},
		{"PUT", "/api/contacts", 405, "GET, POST"},
		{"GET", "/api/folders/1/messages/1/flags", 405, "POST"},
		{"PATCH", "/api/folders/1/messages/1", 405, "GET, DELETE"},
		{"GET", "/api/login", 405, "POST"},
		{"GET", "/api/logout", 405, "POST"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			r := e.call(c.method, c.path, nil).mustCode(t, c.code)
			if !strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json") {
				t.Fatalf("content type %q", r.hdr.Get("Content-Type"))
			}
			msg := r.errMsg(t)
			if c.allow != "" && (r.hdr.Get("Allow") != c.allow || !strings.Contains(msg, c.allow)) {
				t.Fatalf("Allow %q, error %q; want %q", r.hdr.Get("Allow"), msg, c.allow)
			}
		})
	}
	// Without the password, an unknown endpoint is not revealed.
	e.call("GET", "/api/nope", nil, noAuth).mustCode(t, 401)
	e.call("DELETE", "/api/status", nil, noAuth).mustCode(t, 401)
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	r := e.call("GET", "/api/me", nil).mustCode(t, 200)
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
		"X-Frame-Options":        "DENY",
	} {
		if got := r.hdr.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(r.hdr.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("CSP %q", r.hdr.Get("Content-Security-Policy"))
	}
}

func TestNodeEndpoints(t *testing.T) {
	e := newEnv(t)
	var me map[string]string
	e.call("GET", "/api/me", nil).mustCode(t, 200).decode(t, &me)
	if me["address"] != e.me {
		t.Fatalf("me %v, want %s", me, e.me)
	}
	var peers []api.Peer
	e.call("GET", "/api/peers", nil).mustCode(t, 200).decode(t, &peers)
	if len(peers) != 1 || peers[0].ID != "peer-a" {
		t.Fatalf("peers %v", peers)
	}
}

func TestQR(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		query string
		code  int
	}{
		{"?text=" + e.me, 200},
		{"?text=x", 200},
		{"", 400},
		{"?text=", 400},
		{"?text=" + strings.Repeat("a", 2049), 400},
	}
	for _, c := range cases {
		r := e.call("GET", "/api/qr"+c.query, nil).mustCode(t, c.code)
		if c.code != 200 {
			r.errMsg(t)
			continue
		}
		if r.hdr.Get("Content-Type") != "image/svg+xml" {
			t.Fatalf("content type %q", r.hdr.Get("Content-Type"))
		}
		var doc struct {
			XMLName xml.Name `xml:"svg"`
			Path    struct {
				D string `xml:"d,attr"`
			} `xml:"path"`
		}
		if err := xml.Unmarshal(r.body, &doc); err != nil || doc.Path.D == "" {
			t.Fatalf("not an SVG with a path: %v\n%s", err, r.body)
		}
		if bytes.Contains(bytes.ToLower(r.body), []byte("script")) {
			t.Fatal("script in the SVG")
		}
	}
}

func TestAutoconfig(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml?emailaddress=tm1x%40tangle"} {
		r := e.call("GET", path, nil, noAuth).mustCode(t, 200)
		var doc autoconfig
		if err := xml.Unmarshal(r.body, &doc); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		in, out := doc.Provider.Incoming, doc.Provider.Outgoing
		if doc.Version != "1.1" || doc.Provider.Domain != "tangle" ||
			in.Type != "imap" || in.Hostname != "127.0.0.1" || in.Port != 1143 || in.SocketType != "STARTTLS" ||
			out.Type != "smtp" || out.Port != 1587 || in.Username != "%EMAILADDRESS%" {
			t.Fatalf("%s: %+v", path, doc)
		}
	}
}

func TestClientPage(t *testing.T) {
	files := fstest.MapFS{
		"index.html": {Data: []byte("<!DOCTYPE html><title>client</title>")},
		"app.js":     {Data: []byte("export {};")},
	}
	for _, c := range []struct {
		name  string
		files fstest.MapFS
		body  string
	}{{"built-in", nil, `data-test="login-password"`}, {"given", files, "<title>client</title>"}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Backend: &fakeBackend{}, Password: "pw"}
			if c.files != nil {
				cfg.Client = c.files
			}
			hs := httptest.NewServer(New(cfg).Handler())
			defer hs.Close()
			for _, path := range []string{"/", "/app.js"} {
				res, err := http.Get(hs.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				buf.ReadFrom(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || (path == "/" && !strings.Contains(buf.String(), c.body)) {
					t.Fatalf("%s: status %d: %.200s", path, res.StatusCode, buf.String())
				}
				if got := res.Header.Get("Content-Security-Policy"); got != clientCSP {
					t.Fatalf("%s: CSP %q", path, got)
				}
				if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("X-Frame-Options") != "DENY" {
					t.Fatalf("%s: headers %v", path, res.Header)
				}
			}
			res, err := http.Post(hs.URL+"/", "text/plain", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 405 {
				t.Fatalf("POST /: status %d", res.StatusCode)
			}
			res, err = http.Get(hs.URL + "/no-such-file")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 404 {
				t.Fatalf("missing file: status %d", res.StatusCode)
			}
		})
	}
}

// TestNoSecretsInLog checks that a failed login and a sent message leave neither the password nor
// message content in the log.
func TestNoSecretsInLog(t *testing.T) {
	var logBuf testwait.Buffer
	e := newEnv(t, func(c *envConfig) {
		c.tune = func(s *Server) {
			s.log = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
	e.call("POST", "/api/login", api.Login{Password: "wrong-guess-xyz"}, noAuth).mustCode(t, 401)
	e.call("POST", "/api/login", api.Login{Password: testPassword}, noAuth).mustCode(t, 204)
	e.call("POST", "/api/messages", map[string]any{"to": []string{newAddress(t)}, "subject": "secret subject",
		"text": "secret body"}).mustCode(t, 202)
	log := logBuf.String()
	if !strings.Contains(log, "failed API login") {
		t.Fatalf("failed login not logged: %s", log)
	}
	for _, secret := range []string{"wrong-guess-xyz", testPassword, "secret subject", "secret body"} {
		if strings.Contains(log, secret) {
			t.Fatalf("log holds %q:\n%s", secret, log)
		}
	}
}

func TestServerClose(t *testing.T) {
	e := newEnv(t)
	done := make(chan struct{})
	go func() {
		e.srv.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(eventTimeout):
		t.Fatal("Close hangs")
	}
	e.srv.Close() // twice is fine
}

func TestHandlerPanic(t *testing.T) {
	var logBuf testwait.Buffer
	srv := New(Config{Backend: &panicky{}, Password: "pw", Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	req := httptest.NewRequest("GET", "http://127.0.0.1/api/status", nil)
	req.Header.Set("Authorization", "Bearer pw")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	if w.Code != 500 || !strings.Contains(w.Body.String(), `"error"`) || !strings.Contains(logBuf.String(), "panicked") {
		t.Fatalf("status %d, body %s, log %s", w.Code, w.Body, logBuf.String())
	}
}

type panicky struct{ fakeBackend }

func (*panicky) Status() api.Status { panic("bug") }

// TestMetrics: GET /metrics speaks the Prometheus text format 0.0.4 (parsed back with
// prometheus/common's expfmt, label values with quotes, line feeds and non-ASCII intact) and needs the
// password.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.call("GET", "/metrics", nil, withHeader("Authorization", "")).mustCode(t, 401)
	r := e.call("GET", "/metrics", nil).mustCode(t, 200)
	if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, r.body)
	}
	if f := fams["tanglemail_inbox_filed_total"]; f == nil || f.GetType() != dto.MetricType_COUNTER ||
		f.GetHelp() != "Envelopes filed.\nSecond line." || f.Metric[0].GetCounter().GetValue() != 1e6 {
		t.Errorf("tanglemail_inbox_filed_total: %v", f)
	}
	if f := fams["tanglemail_peers"]; f == nil || f.GetType() != dto.MetricType_GAUGE || f.Metric[0].GetGauge().GetValue() != 3 {
		t.Errorf("tanglemail_peers: %v", f)
	}
	got := map[string]float64{}
	for _, m := range fams["tanglemail_mailbox_messages"].GetMetric() {
		got[m.Label[0].GetValue()] = m.GetGauge().GetValue()
	}
	if len(got) != 2 || got["INBOX"] != 2 || got["Grüße \"x\"\n\u2028"] != 0.5 {
		t.Errorf("tanglemail_mailbox_messages: %v", got)
	}
}
