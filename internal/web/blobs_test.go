package web

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/tanglemail/tanglemail/internal/api"
)

// fakeBlobs is the node's blob service: pending blob mail by key.
type fakeBlobs struct {
	mu      sync.Mutex
	pending []api.PendingBlob
	sends   []api.BlobSend
	err     error // returned by every call when set
}

func (f *fakeBlobs) BlobSends(context.Context) ([]api.BlobSend, error) {
	return fakeList(f, &f.sends)
}

// fakeList returns a copy of *l, or f.err.
func fakeList[T any](f *fakeBlobs, l *[]T) ([]T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return append([]T(nil), *l...), nil
}

func (f *fakeBlobs) PendingBlobs(context.Context) ([]api.PendingBlob, error) {
	return fakeList(f, &f.pending)
}

func (f *fakeBlobs) AcceptBlob(_ context.Context, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	for i := range f.pending {
		if f.pending[i].Key == key {
			f.pending[i].Accepted, f.pending[i].Waiting = true, false
			return nil
		}
	}
	return ErrNoSuchBlob
}

// GET /api/blobs lists the pending blob mail; POST /api/blobs/{key}/accept consents to one (200), 404
// for a key nobody knows, 500 without detail when the node fails; without a blob service the list is
// empty and accepting is 404.
func TestBlobsAccept(t *testing.T) {
	key := strings.Repeat("ab", 32)
	fb := &fakeBlobs{pending: []api.PendingBlob{{Key: key, Sender: "tm1stranger@tangle", Subject: "big file",
		Size: 2 << 20, Waiting: true, Expires: "2026-12-09T08:50:13Z"}}}
	e := newEnv(t, func(c *envConfig) { c.blobs = fb })
	var got []api.PendingBlob
	e.call("GET", "/api/blobs", nil).mustCode(t, 200).decode(t, &got)
	if len(got) != 1 || got[0].Key != key || !got[0].Waiting || got[0].Accepted {
		t.Fatalf("GET /api/blobs: %+v", got)
	}
	e.call("POST", "/api/blobs/"+strings.Repeat("cd", 32)+"/accept", nil).mustCode(t, 404).mustErr(t, "no pending blob mail")
	e.call("GET", "/api/blobs/"+key+"/accept", nil).mustCode(t, 405)
	var ok map[string]bool
	e.call("POST", "/api/blobs/"+key+"/accept", nil).mustCode(t, 200).decode(t, &ok)
	if !ok["accepted"] {
		t.Fatalf("accept answered %v", ok)
	}
	e.call("GET", "/api/blobs", nil).mustCode(t, 200).decode(t, &got)
	if len(got) != 1 || got[0].Waiting || !got[0].Accepted {
		t.Fatalf("after accepting: %+v", got)
	}
	e.call("POST", "/api/blobs/"+key+"/accept", nil, noAuth).mustCode(t, 401)

	fb.mu.Lock()
	fb.err = errors.New("disk on fire at /secret/path")
	fb.mu.Unlock()
	r := e.call("POST", "/api/blobs/"+key+"/accept", nil).mustCode(t, 500)
	if strings.Contains(string(r.body), "/secret/path") {
		t.Fatalf("the error leaks detail: %s", r.body)
	}
	e.call("GET", "/api/blobs", nil).mustCode(t, 500)

	bare := newEnv(t)
	bare.call("GET", "/api/blobs", nil).mustCode(t, 200).decode(t, &got)
	if len(got) != 0 {
		t.Fatalf("without a blob service: %+v", got)
	}
	bare.call("POST", "/api/blobs/"+key+"/accept", nil).mustCode(t, 404)
}

// GET /api/blobs/sent lists the sender's large mail and its progress; [] without a blob service.
func TestBlobSends(t *testing.T) {
	fb := &fakeBlobs{sends: []api.BlobSend{{OutboxID: 7, Subject: "photos", Size: 5 << 20, Stage: "offered", Sealed: 5 << 20,
		Recipients: []api.BlobRecipient{{Address: "tm1bob@tangle", State: "offered"}}}}}
	e := newEnv(t, func(c *envConfig) { c.blobs = fb })
	var got []api.BlobSend
	e.call("GET", "/api/blobs/sent", nil).mustCode(t, 200).decode(t, &got)
	if len(got) != 1 || got[0].OutboxID != 7 || got[0].Stage != "offered" || len(got[0].Recipients) != 1 {
		t.Fatalf("GET /api/blobs/sent: %+v", got)
	}
	e.call("GET", "/api/blobs/sent", nil, noAuth).mustCode(t, 401)
	fb.mu.Lock()
	fb.err = errors.New("boom")
	fb.mu.Unlock()
	e.call("GET", "/api/blobs/sent", nil).mustCode(t, 500)
	bare := newEnv(t)
	bare.call("GET", "/api/blobs/sent", nil).mustCode(t, 200).decode(t, &got)
	if len(got) != 0 {
		t.Fatalf("without a blob service: %+v", got)
	}
}
