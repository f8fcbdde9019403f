package outbox

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/testclock"
)

// fakeBlobs seals nothing real: it returns a fixed ref and remembers the items it sealed (BlobHolder).
type fakeBlobs struct {
	mu     sync.Mutex
	sealed map[store.OutboxID]bool
}

func (f *fakeBlobs) SealBlob(_ context.Context, id store.OutboxID, _ time.Time, msg io.Reader, _ time.Time) ([]byte, error) {
	if _, err := io.Copy(io.Discard, msg); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sealed[id] = true
	return bytes.Repeat([]byte{1}, 80), nil
}

func (f *fakeBlobs) HoldsBlob(id store.OutboxID, _ time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sealed[id]
}

// TestBlobMailFailsAtTTL: blob mail without a receipt by its TTL cannot arrive later (its holders
// delete the blob), so the recipient fails at once: one bounce (Action: failed, 5.4.7) in the sender's
// INBOX that says the large message was not downloaded, no delay notice. Small mail sent alongside
// still gets the delay notice and the grace period.
func TestBlobMailFailsAtTTL(t *testing.T) {
	fb := &fakeBlobs{sealed: map[store.OutboxID]bool{}}
	g := &graceRig{t: t, path: filepath.Join(t.TempDir(), "mail.db"), rec: &recorder{}, id: testID(t, 1), blobs: fb,
		clk: testclock.New(time.Now().Truncate(time.Millisecond))}
	g.rec.peers.Store(1)
	g.start()
	t.Cleanup(g.stop)
	bob := testID(t, 2)
	big, _ := g.submitBody(bob.Address(), "photos", strings.Repeat("0123456789abcdef\r\n", 3000))
	small, _ := g.submitBody(bob.Address(), "note", "body\r\n")
	g.waitState(big, store.RcptPublished)
	g.waitState(small, store.RcptPublished)
	if !fb.HoldsBlob(big, time.Time{}) || fb.HoldsBlob(small, time.Time{}) {
		t.Fatalf("sealed as blobs: %v", fb.sealed)
	}
	g.clk.Advance(mailLife)
	r := g.waitState(big, store.RcptFailed)
	g.waitState(small, store.RcptDelayed)
	if !strings.Contains(r.LastError, "did not download the large message") {
		t.Fatalf("failure reason %q", r.LastError)
	}
	var bounce, delay int
	for _, m := range g.inbox() {
		switch {
		case bytes.Contains(m, []byte("Action: failed")):
			bounce++
			for _, want := range []string{"Status: 5.4.7", "did not download the large message", "Final-Recipient: rfc822; " + bob.Address().Mail()} {
				if !bytes.Contains(m, []byte(want)) {
					t.Errorf("bounce lacks %q:\n%s", want, m)
				}
			}
			if !bytes.Contains(m, []byte("photos")) {
				t.Errorf("bounce does not name the message:\n%s", m)
			}
		case bytes.Contains(m, []byte("Action: delayed")):
			delay++
			if !bytes.Contains(m, []byte("Subject: Delayed: note")) {
				t.Errorf("delay notice for the wrong message:\n%s", m)
			}
		}
	}
	if bounce != 1 || delay != 1 {
		t.Fatalf("INBOX has %d bounces and %d delay notices, want one each", bounce, delay)
	}
}
