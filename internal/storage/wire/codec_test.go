package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

func sampleMsgs() []Msg {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	var id SubID
	copy(id[:], "0123456789abcdef")
	return []Msg{
		MsgCreate{Req: CreateRequest{Prefix: Prefix{Bits: 12, Tag: [8]byte{0xab, 0xc0}}, RetentionDays: 30, QuotaMiB: 64, Key: key, Grant: "tok"}},
		MsgCreate{Req: CreateRequest{Prefix: Prefix{Bits: 8, Tag: [8]byte{0x01}}, Key: key}},
		MsgCreated{ID: id, State: Active},
		MsgChallenge{ID: id},
		MsgNonce{Nonce: [32]byte{1, 2, 3}},
		MsgAuth{Sig: [64]byte{9}},
		MsgOK{},
		MsgFetch{After: 42, MaxCount: 512, MaxBytes: 4 << 20},
		MsgBlocks{Next: 7, More: true, Blocks: []Pushed{{Cursor: 6, Block: []byte("abc")}, {Cursor: 7, Block: []byte("de")}}},
		MsgBlocks{Next: 0},
		MsgRelease{UpTo: 99},
		MsgWatch{},
		MsgPush{P: Pushed{Cursor: 3, Block: []byte("xyz")}},
		MsgPublish{Raw: []byte("block")},
		MsgTips{Shard: 3, N: 2},
		MsgTipsResp{IDs: []tangle.ID{{1}, {2}}},
		MsgTipsResp{},
		MsgStatus{},
		MsgStatusResp{S: Status{ID: id, State: Pending, UsedBytes: 1, QuotaBytes: 2, Blocks: 3, Prefix: Prefix{Bits: 4, Tag: [8]byte{0xf0}}, RetentionDays: 5}},
		MsgStatusResp{S: Status{ID: id, State: Active, Expires: time.UnixMilli(1_800_000_000_000).UTC()}},
		MsgError{E: Error{Code: CodeQuotaFull, Msg: "quota of 64 MiB used"}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, m := range sampleMsgs() {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		got, err := ReadMsg(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T: got %#v, want %#v", m, got, m)
		}
		// Every truncation is an error, never a panic.
		for i := 5; i < len(b); i++ {
			if _, err := Decode(b[4:i]); err == nil && i < len(b) {
				if _, isEmpty := m.(MsgOK); !isEmpty {
					// Types whose body ends in a variable "rest" may decode a shorter body.
					switch m.(type) {
					case MsgPush, MsgPublish:
					default:
						t.Errorf("%T: truncation to %d bytes decoded", m, i)
					}
				}
			}
		}
		if _, err := Decode(append(append([]byte(nil), b[4:]...), 0)); err == nil {
			switch m.(type) {
			case MsgPush, MsgPublish:
			default:
				t.Errorf("%T: trailing byte accepted", m)
			}
		}
	}
}

func TestCodecBounds(t *testing.T) {
	// An oversized frame length is refused before reading.
	hdr := []byte{0xff, 0xff, 0xff, 0x7f, TOK}
	if _, err := ReadMsg(bytes.NewReader(hdr)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, err := Decode([]byte{0x55}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown type: %v", err)
	}
	// A prefix of 0 or 17 bits, or with stray bits, is malformed.
	key := make(ed25519.PublicKey, 32)
	for _, p := range []Prefix{{Bits: 0}, {Bits: 17}, {Bits: 4, Tag: [8]byte{0x0f}}} {
		b, err := Encode(MsgCreate{Req: CreateRequest{Prefix: p, Key: key}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b[4:]); !errors.Is(err, ErrMalformed) {
			t.Errorf("prefix %+v: %v", p, err)
		}
	}
	if _, err := Encode(MsgCreate{Req: CreateRequest{Prefix: Prefix{Bits: 8}, Key: key, Grant: strings.Repeat("x", MaxGrant+1)}}); err == nil {
		t.Error("long grant encoded")
	}
}

func TestPrefixMatches(t *testing.T) {
	tag := tangle.Tag{0xab, 0xcd, 0xef}
	for bits := uint8(1); bits <= 16; bits++ {
		p := PrefixOf(tag, bits)
		if !p.Matches(tag) {
			t.Errorf("%d bits: own prefix does not match", bits)
		}
		other := tag
		byteIdx, bit := (bits-1)/8, 7-(bits-1)%8
		other[byteIdx] ^= 1 << bit
		if p.Matches(other) {
			t.Errorf("%d bits: tag with bit %d flipped matches", bits, bits-1)
		}
	}
}

func TestErrorIs(t *testing.T) {
	var err error = Errorf(CodeBadPoW, "work not met")
	if !errors.Is(err, &Error{Code: CodeBadPoW}) || errors.Is(err, &Error{Code: CodeBadBlock}) || !IsCode(err, CodeBadPoW) {
		t.Fatal("Is by code")
	}
}
