package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakeBackend struct{}

func (fakeBackend) Status() any { return map[string]int{"blocks": 7} }
func (fakeBackend) Peers() any  { return []string{"peer-a"} }

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
