package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
)

// The client side of the claim API (protocol.md §15.1), for `tanglemail gateway claim` and tests.

// FetchInfo asks the claim API at base (e.g. "http://gw.example.org:4582") who the gateway is and returns
// its answer and its parsed address.
func FetchInfo(ctx context.Context, c *http.Client, base string) (Info, identity.Address, error) {
	var info Info
	if err := callJSON(ctx, c, http.MethodGet, strings.TrimSuffix(base, "/")+"/gateway", nil, &info); err != nil {
		return Info{}, identity.Address{}, err
	}
	a, err := mail.ParseRecipient(info.Address)
	if err != nil {
		return Info{}, identity.Address{}, fmt.Errorf("gateway: the gateway reports a bad address %q: %w", info.Address, err)
	}
	return info, a, nil
}

// SubmitClaim sends a signed request to the claim API at base.
func SubmitClaim(ctx context.Context, c *http.Client, base string, r *ClaimRequest) (ClaimAnswer, error) {
	var ans ClaimAnswer
	err := callJSON(ctx, c, http.MethodPost, strings.TrimSuffix(base, "/")+"/claim", r.Encode(), &ans)
	return ans, err
}

// Claim asks the gateway at base who it is, then signs a request by id for local@domain (op OpClaim or
// OpRevoke, now, a random nonce) bound to that gateway and submits it.
func Claim(ctx context.Context, c *http.Client, base string, id *identity.Identity, op byte, local, domain string) (ClaimAnswer, error) {
	_, gw, err := FetchInfo(ctx, c, base)
	if err != nil {
		return ClaimAnswer{}, err
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	r, err := SignClaim(id, op, gw, local, domain, time.Now(), nonce)
	if err != nil {
		return ClaimAnswer{}, err
	}
	return SubmitClaim(ctx, c, base, r)
}

// callJSON sends body (if any) and decodes a JSON answer; a non-200 answer's "error" is the error.
func callJSON(ctx context.Context, c *http.Client, method, url string, body []byte, out any) error {
	if c == nil {
		c = http.DefaultClient
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e claimError
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("the gateway refused (%s): %s", resp.Status, e.Error)
		}
		return fmt.Errorf("the gateway answered %s", resp.Status)
	}
	return json.Unmarshal(data, out)
}
