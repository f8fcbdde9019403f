// Package wkd owns the lookup of a correspondent's OpenPGP key in a Web Key Directory
// (draft-koch-openpgp-webkey-service, "OpenPGP Web Key Directory", §3.1): the key of
// local@domain is at
//
//	advanced: https://openpgpkey.<domain>/.well-known/openpgpkey/<domain>/hu/<hash>?l=<local>
//	direct:   https://<domain>/.well-known/openpgpkey/hu/<hash>?l=<local>
//
// where <hash> is the z-base-32 encoding of the SHA-1 digest of the lower-cased local part. The advanced
// method is tried first; the direct one only if the advanced one gets no HTTP answer at all (the
// openpgpkey sub-domain does not resolve, or does not answer: §3.1 "only if the required sub-domain
// does not exist"). A 404 is "no key" and ends the lookup.
//
// Bounds: HTTPS only (a redirect to anything else is refused), one timeout for the whole lookup, an
// answer of at most MaxSize bytes (pgp.MaxKeySize by default), parsed by pgp.ParsePublicKeys; the key
// returned is the first usable certificate with a user ID for the address (§3.1: the server may return
// several). The HTTP client is injectable, so tests resolve the names to an httptest server on
// 127.0.0.1.
//
// A Client holds no state of its own beyond its configuration and is safe for concurrent use. A Cache
// in front of it remembers answers (a key a day, "no key" an hour, a failure five minutes), so mail
// to the same address does not ask the directory each time.
package wkd

import (
	"context"
	"crypto/sha1"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/pgp"
)

// Errors.
var (
	ErrNotFound = errors.New("wkd: no key published for the address")
	ErrLookup   = errors.New("wkd: lookup failed")
)

// zbase32 is the z-base-32 alphabet (RFC 6189 §5.1.6, as the draft uses it).
var zbase32 = base32.NewEncoding("ybndrfg8ejkmcpqxot1uwisza345h769").WithPadding(base32.NoPadding)

// Hash returns the WKD hash of a local part: z-base-32 of SHA-1 of its ASCII lower-case form (§3.1).
func Hash(local string) string {
	sum := sha1.Sum([]byte(strings.ToLower(local)))
	return zbase32.EncodeToString(sum[:])
}

// URLs returns the advanced and direct method URLs for addr (§3.1).
func URLs(addr string) (advanced, direct string, err error) {
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr {
		return "", "", fmt.Errorf("wkd: %q is not a bare e-mail address", addr)
	}
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr[:at], strings.ToLower(addr[at+1:])
	if domain == "" || strings.ContainsAny(domain, "/?#[]:") {
		return "", "", fmt.Errorf("wkd: domain %q", domain)
	}
	q := "?l=" + url.QueryEscape(local)
	h := Hash(local)
	return "https://openpgpkey." + domain + "/.well-known/openpgpkey/" + domain + "/hu/" + h + q,
		"https://" + domain + "/.well-known/openpgpkey/hu/" + h + q, nil
}

// Client looks keys up.
type Client struct {
	// HTTP makes the requests; nil uses a client of its own (the system's resolver and roots). Tests
	// inject one that dials a loopback server.
	HTTP *http.Client
	// Timeout bounds a whole lookup (both methods); 0 means 10 s.
	Timeout time.Duration
	// MaxSize bounds an answer; 0 means pgp.MaxKeySize.
	MaxSize int64
	// Now is the clock keys are checked at; nil means time.Now.
	Now func() time.Time
}

var defaultClient = &http.Client{
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to %s refused (HTTPS only)", req.URL.Scheme)
		}
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return nil
	},
}

// Lookup returns the key published for addr: ErrNotFound if the directory has none, an error wrapping
// ErrLookup if the directory could not be asked or answered badly.
func (c *Client) Lookup(ctx context.Context, addr string) (*pgp.PublicKey, error) {
	adv, dir, err := URLs(addr)
	if err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, answered, err := c.get(ctx, adv)
	if err != nil && !answered {
		body, _, err = c.get(ctx, dir)
	}
	if err != nil {
		return nil, err
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	keys, err := pgp.ParsePublicKeys(body, now())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLookup, addr, err)
	}
	for _, k := range keys {
		if k.HasAddress(addr) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: the directory's key for %s has no user ID for it", ErrLookup, addr)
}

// get fetches u. answered says an HTTP response came back (whatever its status).
func (c *Client) get(ctx context.Context, u string) (body []byte, answered bool, err error) {
	hc := c.HTTP
	if hc == nil {
		hc = defaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrLookup, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrLookup, err)
	}
	defer resp.Body.Close()
	if resp.Request != nil && resp.Request.URL.Scheme != "https" {
		return nil, true, fmt.Errorf("%w: answer over %s (HTTPS only)", ErrLookup, resp.Request.URL.Scheme)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, true, fmt.Errorf("%w (%s)", ErrNotFound, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, true, fmt.Errorf("%w: %s: %s", ErrLookup, u, resp.Status)
	}
	limit := c.MaxSize
	if limit <= 0 {
		limit = pgp.MaxKeySize
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, true, fmt.Errorf("%w: %v", ErrLookup, err)
	}
	if int64(len(body)) > limit {
		return nil, true, fmt.Errorf("%w: answer over %d bytes", ErrLookup, limit)
	}
	return body, true, nil
}
