package mail

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

const maxContent = 32145 // seal.MaxContent

func testMessage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

var (
	alice = bytes.Repeat([]byte{0xaa}, 32)
	bob   = bytes.Repeat([]byte{0xbb}, 32)
)

// feed gives r the mail content and the chunks in the order given, and returns the message once
// complete (failing on an error or on a completion before the last piece).
func feed(t *testing.T, r *Reassembler, sender []byte, mailContent []byte, chunks [][]byte, order []int) []byte {
	t.Helper()
	var out []byte
	for n, i := range order {
		var got []byte
		var err error
		if i < 0 {
			mc, perr := ParseMailContent(mailContent)
			if perr != nil {
				t.Fatal(perr)
			}
			got, err = r.AddManifest(sender, *mc.Manifest)
		} else {
			c, perr := ParseChunk(chunks[i])
			if perr != nil {
				t.Fatal(perr)
			}
			got, err = r.AddChunk(sender, c)
		}
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		if got != nil {
			if out != nil || n != len(order)-1 && !duplicatesAfter(order, n) {
				t.Fatalf("complete after piece %d of %v", n, order)
			}
			out = got
		}
	}
	return out
}

func duplicatesAfter(order []int, n int) bool {
	seen := map[int]bool{}
	for _, i := range order[:n+1] {
		seen[i] = true
	}
	for _, i := range order[n+1:] {
		if !seen[i] {
			return false
		}
	}
	return true
}

func TestSplitBoundaries(t *testing.T) {
	per := maxContent - ChunkHeaderSize
	cases := []struct{ n, count int }{
		{1, 0},
		{maxContent - 1, 0}, // 1 + N = maxContent: the largest inline message
		{maxContent, 2},     // one byte more: chunked, the second chunk carries 20 bytes
		{2 * per, 2},
		{2*per + 1, 3},
		{5*per - 1, 5},
	}
	for _, c := range cases {
		raw := testMessage(c.n)
		mc, chunks, err := Split(raw, maxContent)
		if err != nil {
			t.Fatalf("%d: %v", c.n, err)
		}
		if len(chunks) != c.count {
			t.Fatalf("%d bytes: %d chunks, want %d", c.n, len(chunks), c.count)
		}
		if len(mc) > maxContent {
			t.Errorf("%d: mail content of %d bytes", c.n, len(mc))
		}
		parsed, err := ParseMailContent(mc)
		if err != nil {
			t.Fatal(err)
		}
		if c.count == 0 {
			if !bytes.Equal(parsed.Inline, raw) || parsed.Manifest != nil {
				t.Errorf("%d: inline content does not round-trip", c.n)
			}
			continue
		}
		if parsed.Manifest == nil || parsed.Manifest.Count != c.count || parsed.Manifest.Length != c.n {
			t.Fatalf("%d: manifest %+v", c.n, parsed.Manifest)
		}
		for i, ch := range chunks {
			if len(ch) > maxContent || (i < len(chunks)-1 && len(ch) != maxContent) {
				t.Errorf("%d: chunk %d has %d bytes", c.n, i, len(ch))
			}
		}
		order := []int{-1}
		for i := range chunks {
			order = append(order, i)
		}
		if got := feed(t, &Reassembler{}, alice, mc, chunks, order); !bytes.Equal(got, raw) {
			t.Errorf("%d: round trip failed", c.n)
		}
	}
}

func TestReassembleOrders(t *testing.T) {
	raw := testMessage(7*(maxContent-ChunkHeaderSize) + 123)
	mc, chunks, err := Split(raw, maxContent)
	if err != nil || len(chunks) != 8 {
		t.Fatal(err, len(chunks))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	orders := map[string][]int{
		"manifest first":   {-1, 0, 1, 2, 3, 4, 5, 6, 7},
		"manifest last":    {0, 1, 2, 3, 4, 5, 6, 7, -1},
		"reversed":         {7, 6, 5, 4, 3, 2, 1, 0, -1},
		"with duplicates":  {3, 3, -1, 0, 0, 1, 2, -1, 4, 5, 6, 2, 7},
		"duplicates after": {-1, 0, 1, 2, 3, 4, 5, 6, 7},
	}
	for i := 0; i < 5; i++ {
		o := []int{-1, 0, 1, 2, 3, 4, 5, 6, 7}
		rng.Shuffle(len(o), func(a, b int) { o[a], o[b] = o[b], o[a] })
		orders[fmt.Sprint("shuffled ", i)] = o
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			r := &Reassembler{}
			if got := feed(t, r, alice, mc, chunks, order); !bytes.Equal(got, raw) {
				t.Fatal("wrong message")
			}
			if n, b := r.Pending(); n != 0 || b != 0 {
				t.Errorf("pending %d messages, %d bytes after completion", n, b)
			}
		})
	}
}

func TestReassembleMissingAndSenders(t *testing.T) {
	raw := testMessage(3 * maxContent)
	var id [IDSize]byte
	id[0] = 7
	mc, chunks, _ := SplitID(raw, maxContent, id)
	r := &Reassembler{}
	// Alice's manifest and chunks 0, 2, 3; Bob sends chunk 1 under the same id: it must not count.
	feed(t, r, alice, mc, chunks, []int{-1, 0, 2, 3})
	c1, _ := ParseChunk(chunks[1])
	if got, err := r.AddChunk(bob, c1); got != nil || err != nil {
		t.Fatalf("bob's chunk: %v %v", got, err)
	}
	missing, haveManifest, ok := r.Missing(alice, id)
	if !ok || !haveManifest || fmt.Sprint(missing) != "[1]" {
		t.Fatalf("missing %v manifest %v ok %v", missing, haveManifest, ok)
	}
	if missing, haveManifest, ok := r.Missing(bob, id); !ok || haveManifest || fmt.Sprint(missing) != "[0 2 3]" {
		t.Fatalf("bob: missing %v manifest %v ok %v", missing, haveManifest, ok)
	}
	if n, _ := r.Pending(); n != 2 {
		t.Fatalf("pending %d", n)
	}
	got, err := r.AddChunk(alice, c1)
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("completion: %v", err)
	}
	if _, _, ok := r.Missing(alice, id); ok {
		t.Error("completed message still pending")
	}
}

func TestReassembleErrors(t *testing.T) {
	raw := testMessage(3 * maxContent)
	mc, chunks, _ := Split(raw, maxContent)
	m := mustManifest(t, mc)
	c := func(i int) Chunk {
		ch, err := ParseChunk(chunks[i])
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}

	t.Run("hash mismatch", func(t *testing.T) {
		r := &Reassembler{}
		bad := c(2)
		bad.Data = bytes.Clone(bad.Data)
		bad.Data[5] ^= 1
		r.AddManifest(alice, m)
		r.AddChunk(alice, c(0))
		r.AddChunk(alice, c(1))
		r.AddChunk(alice, c(3))
		if _, err := r.AddChunk(alice, bad); !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("err = %v", err)
		}
		if n, b := r.Pending(); n != 0 || b != 0 {
			t.Errorf("not dropped: %d %d", n, b)
		}
	})
	t.Run("length mismatch", func(t *testing.T) {
		r := &Reassembler{}
		short := c(3)
		short.Data = short.Data[:len(short.Data)-1]
		r.AddManifest(alice, m)
		for i := 0; i < 3; i++ {
			r.AddChunk(alice, c(i))
		}
		if _, err := r.AddChunk(alice, short); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("same index, other data", func(t *testing.T) {
		r := &Reassembler{}
		r.AddChunk(alice, c(0))
		other := c(0)
		other.Data = other.Data[1:]
		if _, err := r.AddChunk(alice, other); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v", err)
		}
		// The first one is kept: the message still completes.
		for i := 1; i < 4; i++ {
			r.AddChunk(alice, c(i))
		}
		if got, err := r.AddManifest(alice, m); err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("count disagrees", func(t *testing.T) {
		r := &Reassembler{}
		r.AddChunk(alice, c(0))
		x := c(1)
		x.Count = 5
		if _, err := r.AddChunk(alice, x); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v", err)
		}
		m5 := m
		m5.Count = 5
		if _, err := r.AddManifest(alice, m5); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("two manifests", func(t *testing.T) {
		r := &Reassembler{}
		r.AddManifest(alice, m)
		m2 := m
		m2.Hash[0] ^= 1
		if _, err := r.AddManifest(alice, m2); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v", err)
		}
		if _, err := r.AddManifest(alice, m); err != nil {
			t.Fatalf("repeated manifest: %v", err)
		}
	})
	t.Run("chunks beyond the manifest's length", func(t *testing.T) {
		r := &Reassembler{}
		small := m
		small.Length = len(c(0).Data) + 10
		r.AddManifest(alice, small)
		r.AddChunk(alice, c(0))
		if _, err := r.AddChunk(alice, c(1)); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v", err)
		}
		// Manifest after chunks that already hold more than it says.
		r.AddChunk(bob, c(0))
		r.AddChunk(bob, c(1))
		if _, err := r.AddManifest(bob, small); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v", err)
		}
		if n, _ := r.Pending(); n != 0 {
			t.Errorf("pending %d", n)
		}
	})
	t.Run("message size limit", func(t *testing.T) {
		r := &Reassembler{MaxMessageSize: 2 * maxContent}
		if _, err := r.AddManifest(alice, m); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("manifest: %v", err)
		}
		r.AddChunk(alice, c(0))
		r.AddChunk(alice, c(1))
		if _, err := r.AddChunk(alice, c(2)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("chunk: %v", err)
		}
		if n, b := r.Pending(); n != 0 || b != 0 {
			t.Errorf("pending %d %d", n, b)
		}
	})
	t.Run("pending limits", func(t *testing.T) {
		r := &Reassembler{MaxPending: 2}
		r.AddChunk(alice, c(0))
		r.AddChunk(bob, c(0))
		if _, err := r.AddChunk([]byte("carol"), c(0)); !errors.Is(err, ErrPendingFull) {
			t.Fatalf("err = %v", err)
		}
		r = &Reassembler{MaxPendingBytes: 2 * maxContent}
		r.AddChunk(alice, c(0))
		r.AddChunk(alice, c(1))
		if _, err := r.AddChunk(bob, c(0)); !errors.Is(err, ErrPendingFull) {
			t.Fatalf("err = %v", err)
		}
		if n, _ := r.Pending(); n != 1 {
			t.Errorf("rejected chunk left a pending message: %d", n)
		}
	})
	t.Run("expire", func(t *testing.T) {
		now := time.Unix(1000, 0)
		r := &Reassembler{Now: func() time.Time { return now }}
		r.AddChunk(alice, c(0))
		now = now.Add(time.Hour)
		r.AddChunk(bob, c(0))
		if n := r.Expire(time.Unix(1001, 0)); n != 1 {
			t.Fatalf("expired %d", n)
		}
		if _, _, ok := r.Missing(alice, m.ID); ok {
			t.Error("alice's message not expired")
		}
		if n, b := r.Pending(); n != 1 || b != len(c(0).Data) {
			t.Errorf("pending %d %d", n, b)
		}
	})
	t.Run("invalid pieces", func(t *testing.T) {
		r := &Reassembler{}
		if _, err := r.AddChunk(alice, Chunk{Index: 2, Count: 2, Data: []byte{1}}); !errors.Is(err, ErrContent) {
			t.Errorf("index: %v", err)
		}
		if _, err := r.AddChunk(alice, Chunk{Index: 0, Count: 2}); !errors.Is(err, ErrContent) {
			t.Errorf("empty: %v", err)
		}
		if _, err := r.AddManifest(alice, Manifest{Count: 1, Length: 10}); !errors.Is(err, ErrContent) {
			t.Errorf("count: %v", err)
		}
	})
}

func mustManifest(t *testing.T, mc []byte) Manifest {
	t.Helper()
	p, err := ParseMailContent(mc)
	if err != nil || p.Manifest == nil {
		t.Fatalf("%v %+v", err, p)
	}
	return *p.Manifest
}

func TestSplitLimits(t *testing.T) {
	if _, _, err := Split(nil, maxContent); !errors.Is(err, ErrContent) {
		t.Errorf("empty: %v", err)
	}
	if _, _, err := Split(make([]byte, MaxMessageSize+1), maxContent); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	mc, chunks, err := Split(make([]byte, MaxMessageSize), maxContent)
	if err != nil || len(chunks) != 817 || len(mc) != ManifestSize {
		t.Errorf("25 MiB: %v, %d chunks", err, len(chunks))
	}
	if _, _, err := Split(make([]byte, 1025*40), 60); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many chunks: %v", err)
	}
	if _, _, err := Split(make([]byte, 100), 30); err == nil {
		t.Error("tiny envelope accepted")
	}
}

func TestParseContentErrors(t *testing.T) {
	var id [IDSize]byte
	good := Manifest{ID: id, Count: 2, Length: 10}.Encode()
	mail := map[string][]byte{
		"empty":              {},
		"empty inline":       {ContentInline},
		"unknown type":       {0x03, 'x'},
		"short blob":         {ContentBlob, 1},
		"empty blob ref":     {ContentBlob, 0, 0, 'h'},
		"blob ref past end":  {ContentBlob, 3, 0, 'r', 'e'},
		"short manifest":     good[:54],
		"long manifest":      append(bytes.Clone(good), 0),
		"count 1":            Manifest{Count: 1, Length: 10}.Encode(),
		"count 1025":         Manifest{Count: 1025, Length: 5000}.Encode(),
		"length below count": Manifest{Count: 3, Length: 2}.Encode(),
		"length above limit": Manifest{Count: 3, Length: MaxMessageSize + 1}.Encode(),
	}
	for name, b := range mail {
		if _, err := ParseMailContent(b); !errors.Is(err, ErrContent) {
			t.Errorf("mail %s: %v", name, err)
		}
	}
	if _, err := ParseMailContent(good); err != nil {
		t.Errorf("good manifest: %v", err)
	}
	bc, err := EncodeBlob([]byte("ref"), []byte("Subject: hi\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if mc, err := ParseMailContent(bc); err != nil || mc.Blob == nil || string(mc.Blob.Ref) != "ref" ||
		string(mc.Blob.Header) != "Subject: hi\r\n\r\n" || mc.Inline != nil || mc.Manifest != nil {
		t.Errorf("blob content: %+v %v", mc, err)
	}
	chunk := map[string][]byte{
		"empty":       {},
		"header only": Chunk{Index: 0, Count: 2}.Encode(),
		"count 0":     Chunk{Index: 0, Count: 0, Data: []byte{1}}.Encode(),
		"count 1":     Chunk{Index: 0, Count: 1, Data: []byte{1}}.Encode(),
		"count 1025":  Chunk{Index: 0, Count: 1025, Data: []byte{1}}.Encode(),
		"index=count": Chunk{Index: 2, Count: 2, Data: []byte{1}}.Encode(),
	}
	for name, b := range chunk {
		if _, err := ParseChunk(b); !errors.Is(err, ErrContent) {
			t.Errorf("chunk %s: %v", name, err)
		}
	}
}

// FuzzParseChunk feeds arbitrary bytes to both envelope content parsers: they never panic, and what
// they accept re-encodes to the same bytes (the encoding is canonical).
func FuzzParseChunk(f *testing.F) {
	raw := testMessage(maxContent + 5)
	mc, chunks, _ := Split(raw, maxContent)
	f.Add(mc)
	f.Add(chunks[1])
	f.Add(EncodeInline([]byte("Subject: x\r\n\r\nhi\r\n")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseChunk(b); err == nil {
			if !bytes.Equal(c.Encode(), b) {
				t.Fatalf("chunk %x re-encodes to %x", b, c.Encode())
			}
			if c.Index >= c.Count || c.Count < 2 || len(c.Data) == 0 {
				t.Fatalf("accepted invalid chunk %+v", c)
			}
		} else if !errors.Is(err, ErrContent) {
			t.Fatalf("chunk error %v does not wrap ErrContent", err)
		}
		mc, err := ParseMailContent(b)
		if err != nil {
			if !errors.Is(err, ErrContent) {
				t.Fatalf("mail error %v does not wrap ErrContent", err)
			}
			return
		}
		switch {
		case mc.Manifest != nil && mc.Inline == nil:
			if !bytes.Equal(mc.Manifest.Encode(), b) {
				t.Fatalf("manifest %x re-encodes to %x", b, mc.Manifest.Encode())
			}
			// A Reassembler takes any parsed manifest without panicking.
			var r Reassembler
			r.AddManifest(alice, *mc.Manifest)
		case mc.Inline != nil && mc.Manifest == nil && mc.Blob == nil:
			if !bytes.Equal(EncodeInline(mc.Inline), b) {
				t.Fatalf("inline %x re-encodes differently", b)
			}
		case mc.Blob != nil && mc.Inline == nil && mc.Manifest == nil:
			enc, err := EncodeBlob(mc.Blob.Ref, mc.Blob.Header)
			if err != nil || !bytes.Equal(enc, b) {
				t.Fatalf("blob content %x re-encodes to %x (%v)", b, enc, err)
			}
			if len(mc.Blob.Ref) == 0 || len(mc.Blob.Ref) > MaxBlobRef {
				t.Fatalf("accepted a blob ref of %d bytes", len(mc.Blob.Ref))
			}
		default:
			t.Fatalf("not exactly one of inline, manifest and blob: %+v", mc)
		}
	})
}

// TestProtocolVectorsChunks checks the vectors of docs/protocol.md §10.1.
func TestProtocolVectorsChunks(t *testing.T) {
	vs := readVectors(t, "### 10.1 Mail and chunks")
	if len(vs) != 2 {
		t.Fatalf("%d vectors, want 2", len(vs))
	}
	for _, v := range vs {
		t.Run(v["vector"], func(t *testing.T) {
			get := func(k string) string {
				s, ok := v[k]
				if !ok {
					t.Fatalf("no %q", k)
				}
				return s
			}
			unhex := func(k string) []byte {
				b, err := hex.DecodeString(get(k))
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				return b
			}
			atoi := func(k string) int {
				n, err := strconv.Atoi(get(k))
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				return n
			}
			max := atoi("max_content")
			switch v["vector"] {
			case "inline":
				msg := unhex("message")
				mc, chunks, err := Split(msg, max)
				if err != nil || chunks != nil {
					t.Fatal(err, len(chunks))
				}
				if want := unhex("mail_content"); !bytes.Equal(mc, want) {
					t.Errorf("mail_content = %x, want %x", mc, want)
				}
			case "chunked":
				msg := testMessage(atoi("message_length"))
				if h := blake2b.Sum256(msg); hex.EncodeToString(h[:]) != get("message_hash") {
					t.Errorf("message_hash = %x", h)
				}
				id := [IDSize]byte(unhex("message_id"))
				mc, chunks, err := SplitID(msg, max, id)
				if err != nil {
					t.Fatal(err)
				}
				if want := unhex("mail_content"); !bytes.Equal(mc, want) {
					t.Errorf("mail_content = %x, want %x", mc, want)
				}
				if len(chunks) != atoi("chunk_count") {
					t.Fatalf("chunk_count = %d", len(chunks))
				}
				r := &Reassembler{}
				r.AddManifest(alice, mustManifest(t, mc))
				var got []byte
				for i, c := range chunks {
					p := fmt.Sprintf("chunk_%d_", i)
					if h := hex.EncodeToString(c[:ChunkHeaderSize]); h != get(p+"header") {
						t.Errorf("%sheader = %s", p, h)
					}
					if n := len(c) - ChunkHeaderSize; n != atoi(p+"data_length") {
						t.Errorf("%sdata_length = %d", p, n)
					}
					if h := blake2b.Sum256(c); hex.EncodeToString(h[:]) != get(p+"content_hash") {
						t.Errorf("%scontent_hash = %x", p, h)
					}
					pc, err := ParseChunk(c)
					if err != nil {
						t.Fatal(err)
					}
					if got, err = r.AddChunk(alice, pc); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(got, msg) {
					t.Error("vector does not reassemble")
				}
			default:
				t.Fatalf("unknown vector %q", v["vector"])
			}
		})
	}
}

// TestProtocolVectorsBlobMail checks the vector of protocol.md §13.7.
func TestProtocolVectorsBlobMail(t *testing.T) {
	vs := readVectors(t, "### 13.7 Mail carried by a blob")
	if len(vs) != 1 {
		t.Fatalf("%d vectors", len(vs))
	}
	v := vs[0]
	got, err := EncodeBlob(unhex(t, v["ref"]), unhex(t, v["header"]))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != v["mail_content"] {
		t.Fatalf("content %x, protocol.md says %s", got, v["mail_content"])
	}
	mc, err := ParseMailContent(got)
	if err != nil || mc.Blob == nil || !bytes.Equal(mc.Blob.Ref, unhex(t, v["ref"])) {
		t.Fatalf("parse: %+v %v", mc, err)
	}
}
