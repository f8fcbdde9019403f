package p2p

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

func sampleMessages() []*message {
	id := func(b byte) tangle.ID { var x tangle.ID; x[0], x[31] = b, ^b; return x }
	return []*message{
		{Type: msgGetBlocks, IDs: []tangle.ID{id(1), id(2)}},
		{Type: msgBlocks, Blocks: [][]byte{bytes.Repeat([]byte{7}, tangle.MinBlockSize), bytes.Repeat([]byte{8}, 100)}},
		{Type: msgBlocks},
		{Type: msgGetIDs, Shard: 3, Since: 1_700_000_000_000, After: cursor{Time: 1_700_000_000_001, ID: id(9)}, Limit: 4096},
		{Type: msgIDs, More: true, Items: []cursor{{Time: 5, ID: id(3)}, {Time: 6, ID: id(4)}}},
		{Type: msgIDs},
		{Type: msgAnnounce, Shard: 1, Since: 42},
		{Type: msgOK},
		{Type: msgError, Code: errCodeBusy},
		{Type: msgGetDigest, Shard: 2, Since: 99, Slot: 60_000, Digest: make([]digest, 10)},
		{Type: msgDigest, Digest: []digest{{N: 3, XOR: id(5)}, {}}},
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		body := m.encode()
		got, err := decodeMessage(body)
		if err != nil {
			t.Fatalf("type 0x%02x: decode: %v", m.Type, err)
		}
		if !bytes.Equal(got.encode(), body) {
			t.Errorf("type 0x%02x: re-encoding differs", m.Type)
		}
		// Spot-check fields survive (nil and empty slices compare equal through the encoding).
		if m.Type == msgGetIDs && !reflect.DeepEqual(got.After, m.After) {
			t.Errorf("cursor: got %+v want %+v", got.After, m.After)
		}
	}
}

func TestWireRejects(t *testing.T) {
	le16 := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	cases := map[string][]byte{
		"empty":            {},
		"unknown type":     {0x55},
		"get zero ids":     append([]byte{msgGetBlocks}, le16(0)...),
		"get too many ids": append([]byte{msgGetBlocks}, le16(wireMaxIDsPerGet+1)...),
		"get truncated":    append(append([]byte{msgGetBlocks}, le16(2)...), make([]byte, 40)...),
		"trailing bytes":   {msgOK, 0},
		"block too large":  append(append([]byte{msgBlocks}, le16(1)...), binary.LittleEndian.AppendUint32(nil, tangle.MaxBlockSize+1)...),
		"more flag 2":      append([]byte{msgIDs, 2}, le16(0)...),
		"ids limit 0":      append(append([]byte{msgGetIDs}, make([]byte, 4+8+8+32)...), le16(0)...),
		"digest slots 0":   append(append([]byte{msgGetDigest}, make([]byte, 4+8)...), append(binary.LittleEndian.AppendUint32(nil, 1000), le16(0)...)...),
		"error truncated":  {msgError},
	}
	for name, body := range cases {
		if _, err := decodeMessage(body); !errors.Is(err, errWire) {
			t.Errorf("%s: got %v, want errWire", name, err)
		}
	}
}

func TestReadFrameBounds(t *testing.T) {
	var buf bytes.Buffer
	buf.Write(binary.LittleEndian.AppendUint32(nil, 1<<30))
	if _, err := readFrame(&buf, maxFrame); !errors.Is(err, errWire) {
		t.Fatalf("oversized frame: got %v", err)
	}
	buf.Reset()
	buf.Write(binary.LittleEndian.AppendUint32(nil, 0))
	if _, err := readFrame(&buf, maxFrame); !errors.Is(err, errWire) {
		t.Fatalf("empty frame: got %v", err)
	}
	buf.Reset()
	if err := writeFrame(&buf, []byte{msgOK}); err != nil {
		t.Fatal(err)
	}
	body, err := readFrame(&buf, 16)
	if err != nil || !bytes.Equal(body, []byte{msgOK}) {
		t.Fatalf("round trip: %v %x", err, body)
	}
}

// FuzzDecodeMessage: the request/response decoder never panics, and what it accepts re-encodes to the
// same bytes.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(m.encode())
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeMessage(body)
		if err != nil {
			return
		}
		if got := m.encode(); !bytes.Equal(got, body) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", body, got)
		}
	})
}
