package mail

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
