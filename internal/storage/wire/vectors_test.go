package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"reflect"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/protocoldoc"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

const vectorsHeading = "### 12.8 Test vectors"

// vectorMsgs are the messages of the frame vectors of protocol.md §12.8, by name.
func vectorMsgs() map[string]Msg {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x11}, 32)).Public().(ed25519.PublicKey)
	id := SubID{0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a}
	return map[string]Msg{
		"create":   MsgCreate{Req: CreateRequest{Prefix: Prefix{Bits: 12, Tag: [8]byte{0xab, 0xc0}}, RetentionDays: 30, QuotaMiB: 64, Key: key, Grant: "tmg_x"}},
		"created":  MsgCreated{ID: id, State: Active},
		"fetch":    MsgFetch{After: 7, MaxCount: 512, MaxBytes: 4 << 20},
		"blocks":   MsgBlocks{Next: 9, More: true, Blocks: []Pushed{{Cursor: 8, Block: []byte{0xde, 0xad}}, {Cursor: 9, Block: []byte{0xbe, 0xef}}}},
		"release":  MsgRelease{UpTo: 9},
		"tips":     MsgTips{Shard: 0, N: 2},
		"status":   MsgStatusResp{S: Status{ID: id, State: Active, UsedBytes: 1000, QuotaBytes: 64 << 20, Blocks: 3, Expires: time.UnixMilli(1_800_000_000_000).UTC(), Prefix: Prefix{Bits: 12, Tag: [8]byte{0xab, 0xc0}}, RetentionDays: 30}},
		"error":    MsgError{E: Error{Code: CodeQuotaFull, Msg: "full"}},
		"tipsresp": MsgTipsResp{IDs: []tangle.ID{{0x01}}},
	}
}

// TestProtocolVectorsStorage checks the code against the vectors of docs/protocol.md §12.8: frames
// encode and decode to exactly the bytes written, the auth digest and signature match, and prefixes
// match the tags they should.
func TestProtocolVectorsStorage(t *testing.T) {
	// protocoldoc.Path is relative to internal/<package>; this package is one level deeper.
	vs, err := protocoldoc.Read("../"+protocoldoc.Path, vectorsHeading)
	if err != nil {
		t.Fatal(err)
	}
	msgs := vectorMsgs()
	n := map[string]int{}
	for _, v := range vs {
		kind := v.Vals["vector"]
		n[kind]++
		switch kind {
		case "frame":
			m, ok := msgs[v.Vals["name"]]
			if !ok {
				t.Fatalf("no message %q", v.Vals["name"])
			}
			want, err := hex.DecodeString(v.Vals["frame"])
			if err != nil {
				t.Fatal(err)
			}
			got, err := Encode(m)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: encoded %x, protocol.md has %x (%v)", v.Vals["name"], got, want, err)
			}
			dec, err := ReadMsg(bytes.NewReader(want))
			if err != nil || !reflect.DeepEqual(dec, m) {
				t.Errorf("%s: decoded %#v (%v)", v.Vals["name"], dec, err)
			}
		case "auth":
			pid, err := peer.Decode(v.Vals["provider"])
			if err != nil {
				t.Fatal(err)
			}
			var id SubID
			var nonce [NonceSize]byte
			hx(t, v.Vals["sub"], id[:])
			hx(t, v.Vals["nonce"], nonce[:])
			seed := make([]byte, 32)
			hx(t, v.Vals["seed"], seed)
			d := AuthMessage(pid, id, nonce)
			if got := hex.EncodeToString(d); got != v.Vals["digest"] {
				t.Errorf("auth digest %s, protocol.md has %s", got, v.Vals["digest"])
			}
			sig := ed25519.Sign(ed25519.NewKeyFromSeed(seed), d)
			if got := hex.EncodeToString(sig); got != v.Vals["signature"] {
				t.Errorf("auth signature %s, protocol.md has %s", got, v.Vals["signature"])
			}
		case "prefix":
			var p Prefix
			var tag tangle.Tag
			hx(t, v.Vals["prefix"], p.Tag[:])
			hx(t, v.Vals["tag"], tag[:])
			var bits int
			for _, c := range v.Vals["bits"] {
				bits = bits*10 + int(c-'0')
			}
			p.Bits = uint8(bits)
			if got := p.Matches(tag); got != (v.Vals["match"] == "yes") {
				t.Errorf("prefix %s/%d tag %s: match %v", v.Vals["prefix"], bits, v.Vals["tag"], got)
			}
		default:
			t.Fatalf("unknown vector kind %q", kind)
		}
	}
	if n["frame"] != len(msgs) || n["auth"] == 0 || n["prefix"] < 2 {
		t.Fatalf("vectors: %v", n)
	}
}

func hx(t *testing.T, s string, dst []byte) {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(dst) {
		t.Fatalf("hex %q: %v", s, err)
	}
	copy(dst, b)
}
