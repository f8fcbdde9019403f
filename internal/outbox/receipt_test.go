package outbox

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/tanglemail/tanglemail/internal/protocoldoc"
	"github.com/tanglemail/tanglemail/internal/seal"
)

const (
	protocolPath   = "../../docs/protocol.md"
	receiptHeading = "### 10.2 Delivery receipts"
)

// readVectors returns the vectors of subsection heading whose first key is "vector".
func readVectors(t *testing.T, heading string) []map[string]string {
	t.Helper()
	vs, err := protocoldoc.Read(protocolPath, heading)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, v := range vs {
		if len(v.Keys) > 0 && v.Keys[0] == "vector" {
			out = append(out, v.Vals)
		}
	}
	return out
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	if s == "-" {
		return []byte{}
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// TestProtocolVectorsReceipt checks the receipt vectors of protocol.md §10.2.
func TestProtocolVectorsReceipt(t *testing.T) {
	vecs := readVectors(t, receiptHeading)
	var valid, invalid int
	for i, v := range vecs {
		content := unhex(t, v["content"])
		switch v["vector"] {
		case "valid":
			valid++
			var keys [][32]byte
			for j := 0; ; j++ {
				h, ok := v["key_"+string(rune('0'+j))]
				if !ok {
					break
				}
				keys = append(keys, [32]byte(unhex(t, h)))
			}
			got, err := ParseReceipt(content)
			if err != nil {
				t.Fatalf("vector %d: %v", i, err)
			}
			if len(got) != len(keys) {
				t.Fatalf("vector %d: %d keys, want %d", i, len(got), len(keys))
			}
			for j := range keys {
				if got[j] != keys[j] {
					t.Fatalf("vector %d: key %d differs", i, j)
				}
			}
			enc, err := EncodeReceipt(keys)
			if err != nil || !bytes.Equal(enc, content) {
				t.Fatalf("vector %d: EncodeReceipt = %x, %v; want %x", i, enc, err, content)
			}
		case "invalid":
			invalid++
			if _, err := ParseReceipt(content); !errors.Is(err, ErrReceipt) {
				t.Fatalf("vector %d (%s): err = %v, want ErrReceipt", i, v["reason"], err)
			}
		default:
			t.Fatalf("vector %d: unknown kind %q", i, v["vector"])
		}
	}
	if valid < 2 || invalid < 5 {
		t.Fatalf("found %d valid and %d invalid vectors in %s", valid, invalid, receiptHeading)
	}
	// The §9.2 envelope's enc, which the second valid vector acknowledges.
	if vecs[1]["key_0"] != "86216cad5ba0c271b6614ada44bbc3f51b218b074886bd67a682b1e92509a640" {
		t.Fatal("the second vector no longer acknowledges the §9.2 envelope")
	}
}

func TestReceiptLimits(t *testing.T) {
	keys := make([][32]byte, MaxReceiptKeys+1)
	for i := range keys {
		keys[i][0], keys[i][1] = byte(i), byte(i>>8)
	}
	if _, err := EncodeReceipt(keys); !errors.Is(err, ErrReceipt) {
		t.Fatalf("%d keys: %v", len(keys), err)
	}
	c, err := EncodeReceipt(keys[:MaxReceiptKeys])
	if err != nil {
		t.Fatal(err)
	}
	if len(c) > seal.MaxContent {
		t.Fatalf("a full receipt is %d bytes, more than an envelope holds", len(c))
	}
	if got, err := ParseReceipt(c); err != nil || len(got) != MaxReceiptKeys {
		t.Fatalf("full receipt: %d keys, %v", len(got), err)
	}
	if _, err := ParseReceipt(append(c, keys[MaxReceiptKeys][:]...)); !errors.Is(err, ErrReceipt) {
		t.Fatalf("too many keys: %v", err)
	}
	if _, err := EncodeReceipt(nil); !errors.Is(err, ErrReceipt) {
		t.Fatal("empty receipt encoded")
	}
	if _, err := EncodeReceipt([][32]byte{keys[0], keys[0]}); !errors.Is(err, ErrReceipt) {
		t.Fatal("repeated key encoded")
	}
}

// FuzzParseReceipt: ParseReceipt never panics, and whatever it accepts re-encodes to the same bytes.
// The committed corpus (testdata/fuzz/FuzzParseReceipt) holds the §10.2 vectors and edge cases.
func FuzzParseReceipt(f *testing.F) {
	k := bytes.Repeat([]byte{7}, 32)
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(append([]byte{1}, k...))
	f.Add(append([]byte{2}, k...))
	f.Add(append(append([]byte{1}, k...), k...))
	f.Fuzz(func(t *testing.T, content []byte) {
		keys, err := ParseReceipt(content)
		if err != nil {
			if !errors.Is(err, ErrReceipt) {
				t.Fatalf("error %v does not wrap ErrReceipt", err)
			}
			return
		}
		enc, err := EncodeReceipt(keys)
		if err != nil || !bytes.Equal(enc, content) {
			t.Fatalf("accepted %x, re-encodes to %x (%v)", content, enc, err)
		}
	})
}

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
