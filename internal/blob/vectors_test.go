package blob

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/tanglemail/tanglemail/internal/protocoldoc"
)

// vectorValues computes every value of the §13 vectors from their inputs: key 00…1f, a plaintext of
// 70,000 bytes (byte i = i mod 251), a ref with that blob and one holder (the sender's node, peer id of
// the Ed25519 key from seed 01…, address /ip4/127.0.0.1/tcp/4001).
func vectorValues(t *testing.T) map[string]string {
	var key Key
	for i := range key {
		key[i] = byte(i)
	}
	pt := make([]byte, 70000)
	for i := range pt {
		pt[i] = byte(i % 251)
	}
	var ct bytes.Buffer
	s := NewSealer(&ct, key)
	s.Write(pt)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	m := s.Manifest()
	id := m.ID()
	n0, n1 := nonce(0, false), nonce(1, true)
	c := ct.Bytes()
	ref := Ref{ID: id, Size: m.Size, Key: key, Holders: []Holder{{Peer: testPeer(t, 1), Sender: true,
		Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")}}}}
	enc, err := ref.Encode()
	if err != nil {
		t.Fatal(err)
	}
	frame := func(typ byte, parts ...[]byte) string {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		writeFrame(w, typ, parts...)
		w.Flush()
		return hex.EncodeToString(b.Bytes())
	}
	h := hex.EncodeToString
	return map[string]string{
		"key":                 h(key[:]),
		"plaintext_length":    "70000",
		"chunk_count":         "2",
		"nonce_0":             h(n0[:]),
		"nonce_1":             h(n1[:]),
		"sealed_length":       "70032",
		"sealed_chunk_0_head": h(c[:16]),
		"sealed_chunk_1_tail": h(c[len(c)-16:]),
		"chunk_hash_0":        h(m.Hashes[0][:]),
		"chunk_hash_1":        h(m.Hashes[1][:]),
		"manifest":            h(m.Encode()),
		"id":                  h(id[:]),
		"holder_peer":         ref.Holders[0].Peer.String(),
		"ref":                 h(enc),
		"get_manifest":        frame(tGetManifest, id[:]),
		"get_chunks":          frame(tGetChunks, id[:], le32(1), le32(1)),
		"error_not_found":     frame(tError, []byte{byte(CodeNotFound)}),
	}
}

// TestProtocolVectorsBlob checks the vectors of protocol.md §13.6 against the code.
func TestProtocolVectorsBlob(t *testing.T) {
	want := vectorValues(t)
	protocoldoc.Check(t, protocoldoc.Path, "### 13.6 Test vectors", want)
	// The sealed length follows from the size rule, and the vector's ref decodes back.
	if SealedSize(70000) != 70032 {
		t.Fatal("sealed size rule")
	}
	raw, _ := hex.DecodeString(want["ref"])
	if _, err := DecodeRef(raw); err != nil {
		t.Fatal(err)
	}
}
