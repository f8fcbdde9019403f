package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/node"
)

// apiClient calls the JSON API (docs/api.md) of the node running on a data directory. Every request
// reads the node's API address and password from the data directory afresh, so that a client outlives
// a restart of the node (which may listen on another port). The password goes in an
// "Authorization: Bearer" header; no proxy is ever used.
type apiClient struct {
	dataDir  string
	startCmd string // how to start the node on dataDir, for error messages
	calls    *http.Client
	streams  *http.Client // no overall timeout: event streams are long
}

var apiTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return t
}()

const apiCallTimeout = 15 * time.Second

// newAPIClient returns a client of the node on dataDir, or the error that no node runs there.
func newAPIClient(env *cmdEnv, dataDir string) (*apiClient, error) {
	if _, _, err := node.ReadAPIInfo(dataDir); err != nil {
		return nil, err
	}
	start := "tanglemail"
	if dataDir != defaultDataDir(env.getenv) {
		start = "tanglemail --data-dir " + dataDir
	}
	return &apiClient{
		dataDir:  dataDir,
		startCmd: start,
		calls:    &http.Client{Transport: apiTransport, Timeout: apiCallTimeout},
		streams:  &http.Client{Transport: apiTransport},
	}, nil
}

// apiError is an answer of the node other than 2xx.
type apiError struct {
	Status  int
	Message string // the node's {"error": …} text, or a sentence of ours
}

func (e *apiError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("the node answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// apiStatus is the HTTP status of an apiError in err's chain, or 0.
func apiStatus(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// newRequest makes an authenticated request; body, if not nil, is sent as JSON. A POST always says
// Content-Type: application/json, even without a body (the API answers 415 to anything else).
func (c *apiClient) newRequest(ctx context.Context, method, path string, body any) (*http.Request, string, error) {
	info, password, err := node.ReadAPIInfo(c.dataDir)
	if err != nil {
		return nil, "", err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, "", err
		}
		rd = bytes.NewReader(b)
	}
	base := strings.TrimRight(info.URL, "/")
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, "", fmt.Errorf("%s in %s: %w", node.APIFile, c.dataDir, err)
	}
	req.Header.Set("Authorization", "Bearer "+password)
	if body != nil || method == http.MethodPost || method == http.MethodPatch || method == http.MethodPut {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, base, nil
}

// do sends req and turns failures into errors that say what to do.
func (c *apiClient) do(client *http.Client, req *http.Request, base string) (*http.Response, error) {
	resp, err := client.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("the node on %s does not answer at %s (is it running? start it with `%s`): %w",
			c.dataDir, base, c.startCmd, unwrapURLError(err))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e api.Error
	_ = json.Unmarshal(body, &e)
	ae := &apiError{Status: resp.StatusCode, Message: strings.TrimSpace(e.Error)}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		ae.Message = fmt.Sprintf("the node at %s refused the password in %s: is it running on another data directory? Then give that one with --data-dir",
			base, filepath.Join(c.dataDir, node.PasswordFile))
	case ae.Message == "":
		ae.Message = fmt.Sprintf("the node answered %s to %s %s", resp.Status, req.Method, req.URL.Path)
	default:
		ae.Message = fmt.Sprintf("the node answered %d: %s", resp.StatusCode, ae.Message)
	}
	return nil, ae
}

// unwrapURLError drops the `Get "http://…":` prefix of a *url.Error: the message says the URL already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// call makes one request and decodes a JSON answer into out (if not nil).
func (c *apiClient) call(ctx context.Context, method, path string, in, out any) error {
	req, base, err := c.newRequest(ctx, method, path, in)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.do(c.calls, req, base)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("the node answered %s %s with something unexpected: %w", method, path, err)
	}
	return nil
}

// callAPI is the one call of a command that makes a single request of the node running on dataDir:
// it finds the node (an error that says how to start it if none runs there), authenticates, sends in as
// JSON (if not nil) and decodes the answer into out (if not nil), within the command's context.
func callAPI(env *cmdEnv, dataDir, method, path string, in, out any) error {
	client, err := newAPIClient(env, dataDir)
	if err != nil {
		return err
	}
	ctx, cancel := env.context()
	defer cancel()
	return client.call(ctx, method, path, in, out)
}

// raw makes a GET request and returns the answer's body unchanged.
func (c *apiClient) raw(ctx context.Context, path string) ([]byte, error) {
	req, base, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(c.calls, req, base)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

// openEvents opens the event stream GET /api/events. lastID, if not empty, is sent as Last-Event-ID.
func (c *apiClient) openEvents(ctx context.Context, lastID string) (io.ReadCloser, error) {
	req, base, err := c.newRequest(ctx, http.MethodGet, "/api/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.do(c.streams, req, base)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "text/event-stream") {
		resp.Body.Close()
		return nil, &apiError{Status: resp.StatusCode, Message: fmt.Sprintf("the node's /api/events answered %q, not an event stream (text/event-stream)", ct)}
	}
	return resp.Body, nil
}
