package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"filippo.io/edwards25519"
)

// BIP-350 "Test vectors for Bech32m": valid strings.
var bip350Valid = []string{
	"A1LQFN3A",
	"a1lqfn3a",
	"an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
	"abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
	"11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
	"split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
	"?1v759aa",
}

// BIP-350 "Test vectors for Bech32m": invalid strings, with the reason the BIP gives and the error we
// classify it as.
var bip350Invalid = []struct {
	s      string
	reason string
	err    error
}{
	{"\x20" + "1xj0phk", "HRP character out of range", ErrCharacter},
	{"\x7f" + "1g6xzxy", "HRP character out of range", ErrCharacter},
	{"\x80" + "1vctc34", "HRP character out of range", ErrCharacter},
	{"an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4", "overall max length exceeded", ErrDataLength},
	{"qyrz8wqd2c9m", "No separator character", ErrPrefix},
	{"1qyrz8wqd2c9m", "Empty HRP", ErrPrefix},
	{"y1b0jsk6g", "Invalid data character", ErrCharacter},
	{"lt1igcx5c0", "Invalid data character", ErrCharacter},
	{"in1muywd", "Too short checksum", ErrChecksum},
	{"mm1crxm3i", "Invalid character in checksum", ErrCharacter},
	{"au1s5cgom", "Invalid character in checksum", ErrCharacter},
	{"M1VUXWEZ", "checksum calculated with uppercase form of HRP", ErrChecksum},
	{"16plkw9", "empty HRP", ErrPrefix},
	{"1p2gdwpf", "empty HRP", ErrPrefix},
}

// BIP-173 valid bech32 strings: their checksums must be rejected as bech32, not bech32m.
var bip173Valid = []string{
	"A12UEL5L",
	"a12uel5l",
	"an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
	"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
	"11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
	"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
	"?1ezyfcl",
}

func TestBech32mBIP350Vectors(t *testing.T) {
	for _, s := range bip350Valid {
		hrp, data, err := bech32mDecode(s, "")
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		// Re-encoding gives the lower-case string back.
		if got := bech32mEncode(hrp, data); got != strings.ToLower(s) {
			t.Errorf("%q: re-encoded as %q", s, got)
		}
		// Any single-character change breaks the checksum (or the character set).
		for i := len(hrp) + 1; i < len(s); i++ {
			b := []byte(strings.ToLower(s))
			b[i] = bech32Charset[(strings.IndexByte(bech32Charset, b[i])+1)%32]
			if _, _, err := bech32mDecode(string(b), ""); err == nil {
				t.Errorf("%q with position %d changed still decodes", s, i)
			}
		}
	}
	for _, v := range bip350Invalid {
		_, _, err := bech32mDecode(v.s, "")
		if err == nil {
			t.Errorf("%q (%s) accepted", v.s, v.reason)
			continue
		}
		if !errors.Is(err, v.err) {
			t.Errorf("%q (%s): err = %v, want %v", v.s, v.reason, err, v.err)
		}
	}
	for _, s := range bip173Valid {
		_, _, err := bech32mDecode(s, "")
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "BIP-173") {
			t.Errorf("bech32 string %q: err = %v, want a bech32-not-bech32m checksum error", s, err)
		}
	}
}

func TestBitRegrouping(t *testing.T) {
	for n := range 40 {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*37 + n)
		}
		back, err := from5(to5(data))
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("n=%d: round trip %x -> %x (%v)", n, data, back, err)
		}
	}
}

// encodeRaw builds a bech32-family string with an arbitrary checksum constant.
func encodeRaw(hrp string, data5 []byte, constant uint32) string {
	chk := hrpPolymod(hrp)
	for _, v := range data5 {
		chk = polymodStep(chk, v)
	}
	for range 6 {
		chk = polymodStep(chk, 0)
	}
	chk ^= constant
	s := hrp + "1"
	for _, v := range data5 {
		s += string(bech32Charset[v])
	}
	for i := range 6 {
		s += string(bech32Charset[(chk>>uint(5*(5-i)))&31])
	}
	return s
}

func TestAddressRoundTrip(t *testing.T) {
	for k := 0; k <= MaxTagBits; k++ {
		id, err := Generate(k)
		if err != nil {
			t.Fatal(err)
		}
		a := id.Address()
		s := a.String()
		if len(s) != AddressLen || !strings.HasPrefix(s, "tm1") || strings.ToLower(s) != s {
			t.Fatalf("address %q: want 62 lower-case characters starting tm1", s)
		}
		if a.VersionByte() != byte(32+k) {
			t.Fatalf("version byte %#x", a.VersionByte())
		}
		for _, form := range []string{s, strings.ToUpper(s), a.Mail(), s + "@TANGLE", s + "@Tangle", strings.ToUpper(s) + "@tangle"} {
			got, err := ParseAddress(form)
			if err != nil {
				t.Fatalf("ParseAddress(%q): %v", form, err)
			}
			if !got.Equal(a) {
				t.Fatalf("ParseAddress(%q) = %v, want %v", form, got, a)
			}
		}
		if a.Mail() != s+"@tangle" || len(s) > 64 {
			t.Fatalf("mail form %q", a.Mail())
		}
		if err := a.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseAddressErrors(t *testing.T) {
	id, _ := Generate(8)
	good := id.Address()
	data := append([]byte{good.VersionByte()}, good.Key...)
	enc := func(hrp string, d []byte) string { return encodeRaw(hrp, to5(d), bech32mConst) }
	withVersion := func(v byte) string { return enc("tm", append([]byte{v}, good.Key...)) }
	withKey := func(k []byte) string { return enc("tm", append([]byte{good.VersionByte()}, k...)) }

	s := good.String()
	flipped := []byte(s)
	flipped[10] = bech32Charset[(strings.IndexByte(bech32Charset, flipped[10])+1)%32]
	mixed := strings.ToUpper(s[:10]) + s[10:]

	// A 53-group payload whose one padding bit is set.
	d5 := to5(data)
	d5[len(d5)-1] |= 1
	badPad := encodeRaw("tm", d5, bech32mConst)

	notOnCurve := findNotOnCurve(t)
	small := make([]byte, 32)
	small[0] = 1 // the identity point, y = 1
	nonCanonical := findNonCanonical(t)

	cases := []struct {
		name string
		in   string
		err  error
	}{
		{"empty", "", ErrPrefix},
		{"wrong hrp", enc("bc", data), ErrPrefix},
		{"wrong hrp tmx", enc("tmx", data), ErrPrefix},
		{"no separator", "tmqqqqqqqqq", ErrPrefix},
		{"space", " " + s, ErrCharacter},
		{"non-ascii", s[:20] + "é" + s[21:], ErrCharacter},
		{"mixed case", mixed, ErrCharacter},
		{"bad data char b", s[:20] + "b" + s[21:], ErrCharacter},
		{"bad checksum", string(flipped), ErrChecksum},
		{"bech32 checksum", encodeRaw("tm", to5(data), bech32Const), ErrChecksum},
		{"too short checksum", "tm1qqq", ErrChecksum},
		{"32 bytes", enc("tm", data[:32]), ErrDataLength},
		{"34 bytes", enc("tm", append(append([]byte{}, data...), 0)), ErrDataLength},
		{"empty data", enc("tm", nil), ErrDataLength},
		{"nonzero padding", badPad, ErrDataLength},
		{"too long", "tm1" + strings.Repeat("q", 100), ErrDataLength},
		{"version format 0", withVersion(8), ErrAddressVersion},
		{"version format 2", withVersion(2<<5 | 8), ErrAddressVersion},
		{"version format 7", withVersion(0xff), ErrAddressVersion},
		{"tag bits 17", withVersion(1<<5 | 17), ErrTagBits},
		{"tag bits 31", withVersion(1<<5 | 31), ErrTagBits},
		{"not on curve", withKey(notOnCurve), ErrInvalidKey},
		{"small order", withKey(small), ErrInvalidKey},
		{"non-canonical", withKey(nonCanonical), ErrInvalidKey},
		{"wrong domain", s + "@example.com", ErrDomain},
		{"empty domain", s + "@", ErrDomain},
		{"two ats", s + "@tangle@tangle", ErrCharacter},
	}
	all := []error{ErrPrefix, ErrCharacter, ErrChecksum, ErrDataLength, ErrAddressVersion, ErrTagBits, ErrInvalidKey, ErrDomain}
	for _, c := range cases {
		a, err := ParseAddress(c.in)
		if err == nil {
			t.Errorf("%s: %q accepted as %v", c.name, c.in, a)
			continue
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.err)
		}
		for _, other := range all {
			if other != c.err && errors.Is(err, other) {
				t.Errorf("%s: err %v also matches %v", c.name, err, other)
			}
		}
	}
	// The sentinels are distinct.
	for i := range all {
		for j := range all {
			if i != j && errors.Is(all[i], all[j]) {
				t.Errorf("%v is %v", all[i], all[j])
			}
		}
	}
	// Validate catches what the struct can hold.
	if err := (Address{TagBits: 17, Key: good.Key}).Validate(); !errors.Is(err, ErrTagBits) {
		t.Error(err)
	}
	if err := (Address{TagBits: 1, Key: good.Key[:31]}).Validate(); !errors.Is(err, ErrInvalidKey) {
		t.Error(err)
	}
	if (Address{}).String() != "<invalid address>" {
		t.Error("zero address prints as", Address{}.String())
	}
}

func findNotOnCurve(t *testing.T) []byte {
	for i := range 256 {
		k := bytes.Repeat([]byte{byte(i)}, 32)
		k[31] &= 0x7f
		if _, err := new(edwards25519.Point).SetBytes(k); err != nil {
			return k
		}
	}
	t.Fatal("no off-curve encoding found")
	return nil
}

// findNonCanonical returns y + p encoded (y < 19), a non-canonical encoding that SetBytes accepts, of
// a point of large order if there is one.
func findNonCanonical(t *testing.T) []byte {
	for y := 0; y < 19; y++ {
		for _, sign := range []byte{0, 0x80} {
			// p = 2^255 - 19; y + p = 2^255 - 19 + y.
			k := bytes.Repeat([]byte{0xff}, 32)
			k[31] = 0x7f
			k[0] = byte(0xed + y) // 0xed = 256 - 19
			k[31] |= sign
			if y+0xed > 0xff {
				continue
			}
			p, err := new(edwards25519.Point).SetBytes(k)
			if err != nil {
				continue
			}
			if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
				continue
			}
			return k
		}
	}
	// All such points are of small order on this curve; fall back to one of them (still rejected).
	k := bytes.Repeat([]byte{0xff}, 32)
	k[31] = 0x7f
	k[0] = 0xee // p + 1, y = 1
	return k
}

func TestAddressKeyIsValidEd25519(t *testing.T) {
	// What ParseAddress accepts verifies signatures.
	id, _ := Generate(3)
	a, err := ParseAddress(id.Address().String())
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(a.Key, []byte("x"), id.Sign([]byte("x"))) {
		t.Fatal("parsed key does not verify")
	}
}

func FuzzParseAddress(f *testing.F) {
	id, _ := FromSeed(bytes.Repeat([]byte{1}, 32), 8)
	f.Add(id.Address().String())
	f.Add(id.Address().Mail())
	f.Add(strings.ToUpper(id.Address().String()))
	for _, s := range bip350Valid {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			if a.Key != nil {
				t.Fatal("error with a non-zero address")
			}
			return
		}
		// Anything accepted round-trips to its canonical form and is a valid key.
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted invalid address: %v", err)
		}
		b, err := ParseAddress(a.String())
		if err != nil || !b.Equal(a) {
			t.Fatalf("canonical form %q does not round-trip: %v", a.String(), err)
		}
		if !strings.EqualFold(strings.TrimSuffix(strings.ToLower(s), "@tangle"), a.String()) {
			t.Fatalf("%q parsed to %q", s, a.String())
		}
		if _, err := a.X25519PublicKey(); err != nil {
			t.Fatalf("accepted address has no X25519 key: %v", err)
		}
	})
}

// TestBinaryAddress: Binary and ParseBinaryAddress round-trip, and ParseBinaryAddress rejects what
// ParseAddress rejects after decoding (length, version, key).
func TestBinaryAddress(t *testing.T) {
	id, err := Generate(5)
	if err != nil {
		t.Fatal(err)
	}
	a := id.Address()
	b := a.Binary()
	if len(b) != BinarySize || b[0] != a.VersionByte() {
		t.Fatalf("Binary = %x", b)
	}
	got, err := ParseBinaryAddress(b)
	if err != nil || !got.Equal(a) || got.TagBits != a.TagBits {
		t.Fatalf("ParseBinaryAddress = %v, %v; want %v", got, err, a)
	}
	short, version := b[:BinarySize-1], append([]byte{0}, b[1:]...)
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"short":   {short, ErrDataLength},
		"version": {version, ErrAddressVersion},
	} {
		if _, err := ParseBinaryAddress(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}
