package web

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakeBackend struct{}

func (fakeBackend) Status() any { return map[string]int{"blocks": 7} }
func (fakeBackend) Peers() any  { return []string{"peer-a"} }
func (fakeBackend) ClientSettings() ClientSettings {
	return ClientSettings{Address: "tm1x@tangle", IMAP: "127.0.0.1:1143", SMTP: "127.0.0.1:1587"}
}

func TestAuth(t *testing.T) {
	srv := httptest.NewServer(New(fakeBackend{}, "s3cret", nil).Handler())
	defer srv.Close()

	cases := []struct {
		name   string
		header func(*http.Request)
		code   int
	}{
		{"none", func(*http.Request) {}, http.StatusUnauthorized},
		{"wrong basic", func(r *http.Request) { r.SetBasicAuth("x", "nope") }, http.StatusUnauthorized},
		{"prefix of password", func(r *http.Request) { r.SetBasicAuth("x", "s3cre") }, http.StatusUnauthorized},
		{"basic", func(r *http.Request) { r.SetBasicAuth("anyone", "s3cret") }, http.StatusOK},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/api/status", nil)
			c.header(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.code)
			}
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if c.code == http.StatusOK && body["blocks"] != float64(7) {
				t.Fatalf("body %v", body)
			}
			if c.code != http.StatusOK && !strings.Contains(body["error"].(string), "password") {
				t.Fatalf("error body %v does not say what to do", body)
			}
		})
	}
}

func TestUnknownEndpoint(t *testing.T) {
	srv := httptest.NewServer(New(fakeBackend{}, "pw", nil).Handler())
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/nope", nil)
	req.SetBasicAuth("", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestAutoconfig(t *testing.T) {
	srv := httptest.NewServer(New(fakeBackend{}, "pw", nil).Handler())
	defer srv.Close()
	for _, path := range []string{"/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml?emailaddress=tm1x%40tangle"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var doc autoconfig
		err = xml.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: status %d, %v", path, resp.StatusCode, err)
		}
		in, out := doc.Provider.Incoming, doc.Provider.Outgoing
		if doc.Version != "1.1" || doc.Provider.Domain != "tangle" ||
			in.Type != "imap" || in.Hostname != "127.0.0.1" || in.Port != 1143 || in.SocketType != "STARTTLS" ||
			out.Type != "smtp" || out.Port != 1587 || in.Username != "%EMAILADDRESS%" {
			t.Fatalf("%s: %+v", path, doc)
		}
	}
}
