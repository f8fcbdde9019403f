package outbox

import (
	"bytes"
	"testing"

	"github.com/tanglemail/tanglemail/internal/seal"
)

func TestBundle(t *testing.T) {
	p1 := bytes.Repeat([]byte{1}, seal.MinPayload)
	p2 := bytes.Repeat([]byte{2}, seal.MaxPayload)
	b := encodeBundle([][]byte{p1, p2})
	got, err := decodeBundle(b)
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], p1) || !bytes.Equal(got[1], p2) {
		t.Fatalf("round trip: %d payloads, %v", len(got), err)
	}
	for _, bad := range [][]byte{nil, {2, 1, 0}, {1, 0, 0}, b[:len(b)-1], append(bytes.Clone(b), 0),
		encodeBundle([][]byte{{1, 2, 3}})} {
		if _, err := decodeBundle(bad); err == nil {
			t.Fatalf("decoded a corrupt bundle %x…", bad[:min(len(bad), 8)])
		}
	}
}

func TestRetryDelay(t *testing.T) {
	o := &Outbox{retry: defaultRetryInterval}
	mail := uint32(4 * 24 * 3600)
	for n, want := range map[int]string{1: "15m0s", 2: "30m0s", 3: "1h0m0s", 7: "16h0m0s", 8: "24h0m0s", 30: "24h0m0s"} {
		if got := o.retryDelay(mail, n).String(); got != want {
			t.Errorf("mail, publication %d: %s, want %s", n, got, want)
		}
	}
	if got := o.retryDelay(3600, 1).String(); got != "7m30s" {
		t.Errorf("chat: %s, want TTL/8", got)
	}
}
