package seal

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/protocoldoc"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite docs/protocol.md §9.2 from the code")

const (
	protocolPath    = "../../docs/protocol.md"
	envelopeHeading = "### 9.2 Sealed envelope"
)

// readVectors returns the vectors of subsection heading of the protocol document at path.
func readVectors(t *testing.T, path, heading string) []map[string]string {
	t.Helper()
	vs, err := protocoldoc.Read(path, heading)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]map[string]string, len(vs))
	for i, v := range vs {
		out[i] = v.Vals
	}
	return out
}

// The §9.2 vector's inputs.
const (
	vecSenderSeed    = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	vecSenderTagBits = 8
	vecRcptSeed      = "421151a459faeade3d247115f94aedae42318124095afabe4d1451a559faedee"
	vecRcptTagBits   = 16
	vecNetwork       = "tanglemail-dev"
	vecKind          = KindMail
	vecSentMs        = 1_767_225_600_000                                          // 2026-01-01T00:00:00Z
	vecContent       = "\x00Subject: hello\r\n\r\nFirst light on the tangle.\r\n" // §10.1: 0x00, then the inline message
	vecRandSeed      = 9                                                          // testing/cryptotest.SetGlobalRandom seed
)

func vecIDs(t *testing.T, senderSeed, rcptSeed string, sk, rk int) (*identity.Identity, *identity.Identity) {
	t.Helper()
	s, err := identity.FromSeed(mustHex(t, senderSeed), sk)
	if err != nil {
		t.Fatal(err)
	}
	r, err := identity.FromSeed(mustHex(t, rcptSeed), rk)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %.20q…: %v", s, err)
	}
	return b
}

// ephemeralFor returns the HPKE ephemeral private key Seal draws under SetGlobalRandom(seed): HPKE's
// DHKEM Encap (RFC 9180 §4.1) generates it as the first randomness Seal consumes (Ed25519 signing is
// deterministic).
func ephemeralFor(t *testing.T, seed uint64) *ecdh.PrivateKey {
	cryptotest.SetGlobalRandom(t, seed)
	sk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func envelopeVectorBody(t *testing.T) string {
	sender, rcpt := vecIDs(t, vecSenderSeed, vecRcptSeed, vecSenderTagBits, vecRcptTagBits)
	nid := networkID(vecNetwork)
	skE := ephemeralFor(t, vecRandSeed)
	cryptotest.SetGlobalRandom(t, vecRandSeed)
	payload, err := Seal(sender, rcpt.Address(), nid, vecKind, time.UnixMilli(vecSentMs), []byte(vecContent))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload[:EncSize], skE.PublicKey().Bytes()) {
		t.Fatal("the ephemeral key drawn is not the one Seal used")
	}
	pt := openRaw(t, rcpt, nid, payload)
	tag := rcpt.Address().MakeTag(bytes.NewReader(make([]byte, 8)))
	var b strings.Builder
	b.WriteString("One envelope (§6) from the identity of the second §9.1 vector to that of the third. `route_tag`\n")
	b.WriteString("is the tag key's first `recipient_tag_bits` bits, the rest zero (§4). `ephemeral_private` is the\n")
	b.WriteString("HPKE ephemeral X25519 scalar as drawn (RFC 7748 clamping applies); `enc` = X25519(it, 9).\n")
	b.WriteString("`plaintext` is `pt` before encryption and `payload` is enc ‖ ct. `cryptotest_seed` is the\n")
	b.WriteString("`testing/cryptotest.SetGlobalRandom` seed under which the Go implementation reproduces it.\n\n")
	fmt.Fprintf(&b, "```\n")
	fmt.Fprintf(&b, "sender_seed = %s\nsender_tag_bits = %d\nsender_address = %s\n", vecSenderSeed, vecSenderTagBits, sender.Address())
	fmt.Fprintf(&b, "recipient_seed = %s\nrecipient_tag_bits = %d\nrecipient_address = %s\n", vecRcptSeed, vecRcptTagBits, rcpt.Address())
	fmt.Fprintf(&b, "network = %s\nnetwork_id = %x\n", vecNetwork, nid[:])
	fmt.Fprintf(&b, "kind = %d\nsent_ms = %d\ncontent = %x\nroute_tag = %x\n", byte(vecKind), vecSentMs, []byte(vecContent), tag[:])
	fmt.Fprintf(&b, "cryptotest_seed = %d\nephemeral_private = %x\nenc = %x\n", vecRandSeed, skE.Bytes(), payload[:EncSize])
	fmt.Fprintf(&b, "plaintext = %x\npayload = %x\n```\n", pt, payload)
	return b.String()
}

// openRaw is HPKE open without the envelope checks, to expose pt.
func openRaw(t *testing.T, rcpt *identity.Identity, nid [8]byte, payload []byte) []byte {
	t.Helper()
	k, err := hpke.NewDHKEMPrivateKey(rcpt.X25519PrivateKey())
	if err != nil {
		t.Fatal(err)
	}
	in := info(nid)
	pt, err := hpke.Open(k, suiteKDF, suiteAEAD, in[:], payload)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

// TestProtocolVectorsEnvelope checks docs/protocol.md §9.2: the vector opens to its content, and
// re-sealing with the recorded randomness reproduces the payload byte for byte.
func TestProtocolVectorsEnvelope(t *testing.T) {
	if *updateVectors {
		if err := protocoldoc.ReplaceSection(protocolPath, envelopeHeading, envelopeVectorBody(t), "### 9.1 Address"); err != nil {
			t.Fatal(err)
		}
	}
	vs := readVectors(t, protocolPath, envelopeHeading)
	if len(vs) == 0 {
		t.Fatal("docs/protocol.md has no §9.2 vectors (run with -update-vectors)")
	}
	for i, v := range vs {
		get := func(k string) string {
			s, ok := v[k]
			if !ok {
				t.Fatalf("vector %d has no %q", i, k)
			}
			return s
		}
		atoi := func(k string) int64 {
			n, err := strconv.ParseInt(get(k), 10, 64)
			if err != nil {
				t.Fatalf("vector %d: %s: %v", i, k, err)
			}
			return n
		}
		sender, rcpt := vecIDs(t, get("sender_seed"), get("recipient_seed"), int(atoi("sender_tag_bits")), int(atoi("recipient_tag_bits")))
		if sender.Address().String() != get("sender_address") || rcpt.Address().String() != get("recipient_address") {
			t.Fatalf("vector %d: addresses differ", i)
		}
		nid := networkID(get("network"))
		if hex.EncodeToString(nid[:]) != get("network_id") {
			t.Fatalf("vector %d: network id %x, want %s", i, nid, get("network_id"))
		}
		var tag [8]byte
		copy(tag[:], mustHex(t, get("route_tag")))
		content := mustHex(t, get("content"))
		payload := mustHex(t, get("payload"))
		enc := mustHex(t, get("enc"))
		kind := Kind(atoi("kind"))
		sent := time.UnixMilli(atoi("sent_ms"))

		// enc = X25519(ephemeral_private, 9).
		skE, err := ecdh.X25519().NewPrivateKey(mustHex(t, get("ephemeral_private")))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(skE.PublicKey().Bytes(), enc) || !bytes.Equal(payload[:EncSize], enc) {
			t.Fatalf("vector %d: enc is not X25519(ephemeral_private, 9) or not the payload's prefix", i)
		}
		// Opening yields the content.
		m, err := mustOpener(t, rcpt).Open(nid, tag, payload)
		if err != nil {
			t.Fatalf("vector %d: Open: %v", i, err)
		}
		if m.Kind != kind || !bytes.Equal(m.Content, content) || !m.Sent.Equal(sent) ||
			!m.Sender.Equal(sender.Address()) || !bytes.Equal(m.ReplayKey[:], enc) {
			t.Fatalf("vector %d: opened to %+v", i, m)
		}
		if got := openRaw(t, rcpt, nid, payload); hex.EncodeToString(got) != get("plaintext") {
			t.Fatalf("vector %d: plaintext differs", i)
		}
		// Re-sealing with the same randomness reproduces the payload exactly.
		seed := uint64(atoi("cryptotest_seed"))
		if got := ephemeralFor(t, seed).Bytes(); !bytes.Equal(got, skE.Bytes()) {
			t.Fatalf("vector %d: SetGlobalRandom(%d) draws ephemeral key %x, want %x", i, seed, got, skE.Bytes())
		}
		cryptotest.SetGlobalRandom(t, seed)
		again, err := Seal(sender, rcpt.Address(), nid, kind, sent, content)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, payload) {
			t.Fatalf("vector %d: re-sealed payload differs:\n got %x\nwant %x", i, again, payload)
		}
	}
}
