package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/api"
)

// TestStatusLargeMail: `tanglemail status` prints a "Large mail" line per large mail being sent: the
// stage while it is sealed and uploaded, then who has fetched it.
func TestStatusLargeMail(t *testing.T) {
	st := &api.Status{Mode: "light", Blobs: &api.BlobStatus{Sending: []api.BlobSend{
		{OutboxID: 3, Subject: "report", Size: 4 << 20, Stage: "uploading", Uploaded: 1 << 20, Providers: 2},
		{OutboxID: 2, Subject: "photos\r\nInjected: x", Size: 25 << 20, Stage: "offered", Expires: "2026-12-10T00:00:00Z",
			Recipients: []api.BlobRecipient{{Address: "bob@tangle", State: "fetched"}, {Address: "carol@tangle", State: "offered"}}},
		{OutboxID: 1, Size: 2 << 20, Stage: "sealing", Sealed: 1 << 20},
		{OutboxID: 0, Subject: "big", Size: 2 << 20, Stage: "uploading", Providers: 1, ProvidersDone: 1, Error: "the storage provider refused the upload (past its quota); will retry"},
	}}}
	var b bytes.Buffer
	printStatus(&b, st)
	out := b.String()
	for _, want := range []string{
		`Large mail "report", 4.0 MiB: uploading to storage provider 1 of 2, 25%`,
		"bob@tangle fetched, carol@tangle not fetched yet; available until 2026-12-10T00:00:00Z",
		`Large mail "(no subject)", 2.0 MiB: sealing, 50%`,
		`Large mail "big", 2.0 MiB: uploading to storage provider 1 of 1, 0%; failed, will retry: the storage provider refused the upload (past its quota); will retry`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nInjected") {
		t.Errorf("a subject broke the line:\n%s", out)
	}
	st.Mode = "" // a full node prints them too, after its blob counters
	b.Reset()
	printStatus(&b, st)
	if n := strings.Count(b.String(), "Large mail "); n != 4 {
		t.Errorf("a full node's status has %d Large mail lines, want 4:\n%s", n, b.String())
	}
}
