package wkd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/pgp"
)

func TestHashAndURLs(t *testing.T) {
	// The draft's example (§3.1): Joe.Doe@Example.ORG.
	if h := Hash("Joe.Doe"); h != "iy9q119eutrkn8s1mk4r39qejnbu3n5q" {
		t.Fatalf("hash %s", h)
	}
	adv, dir, err := URLs("Joe.Doe@Example.ORG")
	if err != nil {
		t.Fatal(err)
	}
	if adv != "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe" ||
		dir != "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe" {
		t.Fatalf("%s\n%s", adv, dir)
	}
	for _, bad := range []string{"", "no-at", "Joe <joe@example.org>", "a@b/c"} {
		if _, _, err := URLs(bad); err == nil {
			t.Errorf("URLs(%q) succeeded", bad)
		}
	}
}

// directory is an httptest TLS server on 127.0.0.1 playing both hosts of example.com (its certificate
// covers example.com and *.example.com), with a client whose dialer sends every name to it, except the
// names in refuse (as if they did not resolve).
type directory struct {
	srv                *httptest.Server
	advanced, direct   atomic.Int32
	keys               map[string][]byte // path → answer
	refuse             map[string]bool
	status             atomic.Int32
	block              atomic.Bool
	advancedHost, host string
}

func newDirectory(t *testing.T) *directory {
	d := &directory{keys: map[string][]byte{}, refuse: map[string]bool{}, advancedHost: "openpgpkey.example.com", host: "example.com"}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.Host)
		if host == "" {
			host = r.Host
		}
		switch host {
		case d.advancedHost:
			d.advanced.Add(1)
		case d.host:
			d.direct.Add(1)
		}
		if d.block.Load() {
			<-r.Context().Done()
			return
		}
		if st := d.status.Load(); st != 0 {
			w.WriteHeader(int(st))
			return
		}
		k, ok := d.keys[host+r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(k)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *directory) client() *Client {
	hc := d.srv.Client()
	tr := hc.Transport.(*http.Transport).Clone()
	addr := d.srv.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(a)
		if d.refuse[host] {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var dl net.Dialer
		return dl.DialContext(ctx, "tcp", addr) // 127.0.0.1 only
	}
	hc.Transport = tr
	return &Client{HTTP: hc, Timeout: 5 * time.Second}
}

func genKey(t *testing.T, addr string) *pgp.Key {
	k, err := pgp.Generate(addr, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLookupAdvanced(t *testing.T) {
	d := newDirectory(t)
	k := genKey(t, "Joe.Doe@example.com")
	d.keys["openpgpkey.example.com/.well-known/openpgpkey/example.com/hu/"+Hash("joe.doe")] = k.Public().Bytes()
	got, err := d.client().Lookup(context.Background(), "Joe.Doe@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != k.Fingerprint() || d.direct.Load() != 0 {
		t.Fatalf("got %s, direct asked %d times", got.Fingerprint(), d.direct.Load())
	}
	// 404 from the advanced host: no key, and no fallback to the direct method.
	if _, err := d.client().Lookup(context.Background(), "nobody@example.com"); !errors.Is(err, ErrNotFound) || d.direct.Load() != 0 {
		t.Fatalf("%v, direct %d", err, d.direct.Load())
	}
}

func TestLookupDirectFallback(t *testing.T) {
	d := newDirectory(t)
	d.refuse["openpgpkey.example.com"] = true
	k := genKey(t, "joe@example.com")
	other := genKey(t, "eve@example.com")
	// Two certificates; the one with the address is chosen.
	d.keys["example.com/.well-known/openpgpkey/hu/"+Hash("joe")] = append(other.Public().Bytes(), k.Public().Bytes()...)
	got, err := d.client().Lookup(context.Background(), "joe@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != k.Fingerprint() || d.direct.Load() != 1 {
		t.Fatalf("got %s, direct %d", got.Fingerprint(), d.direct.Load())
	}
	// A key without a user ID for the address is refused.
	d.keys["example.com/.well-known/openpgpkey/hu/"+Hash("mallory")] = other.Public().Bytes()
	if _, err := d.client().Lookup(context.Background(), "mallory@example.com"); !errors.Is(err, ErrLookup) {
		t.Fatalf("other's key: %v", err)
	}
}

func TestLookupBounds(t *testing.T) {
	d := newDirectory(t)
	big := bytes.Repeat([]byte{0x99}, pgp.MaxKeySize+10)
	d.keys["openpgpkey.example.com/.well-known/openpgpkey/example.com/hu/"+Hash("big")] = big
	if _, err := d.client().Lookup(context.Background(), "big@example.com"); !errors.Is(err, ErrLookup) || !strings.Contains(err.Error(), "over") {
		t.Fatalf("oversize: %v", err)
	}
	d.keys["openpgpkey.example.com/.well-known/openpgpkey/example.com/hu/"+Hash("junk")] = []byte("<html>hello</html>")
	if _, err := d.client().Lookup(context.Background(), "junk@example.com"); !errors.Is(err, ErrLookup) {
		t.Fatalf("junk: %v", err)
	}
	d.status.Store(http.StatusInternalServerError)
	if _, err := d.client().Lookup(context.Background(), "junk@example.com"); !errors.Is(err, ErrLookup) {
		t.Fatalf("500: %v", err)
	}
	d.status.Store(0)
	d.block.Store(true)
	c := d.client()
	c.Timeout = 300 * time.Millisecond
	start := time.Now()
	if _, err := c.Lookup(context.Background(), "slow@example.com"); !errors.Is(err, ErrLookup) {
		t.Fatalf("slow: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("timeout took %v", el)
	}
	// Nothing answers at all.
	d.block.Store(false)
	d.refuse["openpgpkey.example.com"], d.refuse["example.com"] = true, true
	if _, err := d.client().Lookup(context.Background(), "joe@example.com"); !errors.Is(err, ErrLookup) {
		t.Fatalf("unreachable: %v", err)
	}
}

// answer is a RoundTripper that answers every request with body.
type answer []byte

func (a answer) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Status: "200 OK", Body: io.NopCloser(bytes.NewReader(a)), Request: r, Header: http.Header{}}, nil
}

// FuzzLookupAnswer: whatever a directory answers, Lookup returns a key for the address or an error.
func FuzzLookupAnswer(f *testing.F) {
	k, err := pgp.Generate("joe@example.com", time.Now().Add(-time.Minute))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(k.Public().Bytes())
	f.Add([]byte(k.Public().Armored()))
	f.Add([]byte("<html>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := &Client{HTTP: &http.Client{Transport: answer(body)}, Timeout: time.Second}
		got, err := c.Lookup(context.Background(), "joe@example.com")
		if err == nil && !got.HasAddress("joe@example.com") {
			t.Fatal("a key for another address")
		}
	})
}
