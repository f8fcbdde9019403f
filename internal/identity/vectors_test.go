package identity

import (
	"encoding/hex"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/protocoldoc"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite docs/protocol.md §9.1 from the code")

const protocolPath = "../../docs/protocol.md"

// vector is one fenced code block of `key = value` lines, in order.
type vector struct {
	keys []string
	vals map[string]string
}

func (v vector) get(t *testing.T, k string) string {
	t.Helper()
	s, ok := v.vals[k]
	if !ok {
		t.Fatalf("vector has no %q", k)
	}
	return s
}

// readVectors returns the vectors of subsection heading ("### 9.1 Address") of the document at path.
func readVectors(t *testing.T, path, heading string) []vector {
	t.Helper()
	vs, err := protocoldoc.Read(path, heading)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]vector, len(vs))
	for i, v := range vs {
		out[i] = vector{keys: v.Keys, vals: v.Vals}
	}
	return out
}

var addressVectorSeeds = []struct {
	seed    string
	tagBits int
}{
	{"0000000000000000000000000000000000000000000000000000000000000000", 0},
	{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 8},
	{"421151a459faeade3d247115f94aedae42318124095afabe4d1451a559faedee", 16},
}

func addressVectorBody(t *testing.T) string {
	var b strings.Builder
	b.WriteString("Each block is one identity (§8): `seed` is the Ed25519 seed (RFC 8032 private key), `tagkey` is\n")
	b.WriteString("§4's tag key, `x25519_private` is the clamped scalar and `x25519_public` its public key (§8.2).\n\n")
	for i, v := range addressVectorSeeds {
		id, err := FromSeed(mustHex(t, v.seed), v.tagBits)
		if err != nil {
			t.Fatal(err)
		}
		a := id.Address()
		tk := id.TagKey()
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "```\nseed = %s\ntag_bits = %d\ned25519_public = %x\nversion_byte = %02x\naddress = %s\nmail = %s\ntagkey = %x\nx25519_private = %x\nx25519_public = %x\n```\n",
			v.seed, v.tagBits, []byte(a.Key), a.VersionByte(), a.String(), a.Mail(), tk[:], id.X25519PrivateKey().Bytes(), id.X25519PublicKey().Bytes())
	}
	return b.String()
}

// TestProtocolVectorsAddress checks docs/protocol.md §9.1 against the code (and regenerates it with
// -update-vectors).
func TestProtocolVectorsAddress(t *testing.T) {
	if *updateVectors {
		if err := protocoldoc.ReplaceSection(protocolPath, "### 9.1 Address", addressVectorBody(t), "## 9. Test vectors"); err != nil {
			t.Fatal(err)
		}
	}
	vs := readVectors(t, protocolPath, "### 9.1 Address")
	if len(vs) == 0 {
		t.Fatal("docs/protocol.md has no §9.1 vectors (run with -update-vectors)")
	}
	for i, v := range vs {
		k, err := strconv.Atoi(v.get(t, "tag_bits"))
		if err != nil {
			t.Fatal(err)
		}
		id, err := FromSeed(mustHex(t, v.get(t, "seed")), k)
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		a := id.Address()
		tk := id.TagKey()
		check := func(name, got string) {
			if want := v.get(t, name); got != want {
				t.Errorf("vector %d: %s = %s, want %s", i, name, got, want)
			}
		}
		check("ed25519_public", hex.EncodeToString(a.Key))
		check("version_byte", fmt.Sprintf("%02x", a.VersionByte()))
		check("address", a.String())
		check("mail", a.Mail())
		check("tagkey", hex.EncodeToString(tk[:]))
		check("x25519_private", hex.EncodeToString(id.X25519PrivateKey().Bytes()))
		check("x25519_public", hex.EncodeToString(id.X25519PublicKey().Bytes()))
		for _, form := range []string{v.get(t, "address"), v.get(t, "mail")} {
			p, err := ParseAddress(form)
			if err != nil {
				t.Fatalf("vector %d: ParseAddress(%q): %v", i, form, err)
			}
			if !p.Equal(a) {
				t.Errorf("vector %d: %q decodes to %v, want %v", i, form, p, a)
			}
			x, err := p.X25519PublicKey()
			if err != nil || hex.EncodeToString(x.Bytes()) != v.get(t, "x25519_public") {
				t.Errorf("vector %d: x25519 public from the address differs (%v)", i, err)
			}
		}
	}
}
