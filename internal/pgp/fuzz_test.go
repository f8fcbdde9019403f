package pgp

import (
	"strings"
	"sync"
	"testing"
)

// Fuzz tests of the parsers of network input (go test -fuzz=FuzzX ./internal/pgp). Each seeds its
// corpus with a valid input and near misses; the property is "an error or a bounded, valid result,
// never a panic".

var (
	seedOnce sync.Once
	seedKey  *Key
)

func fuzzKey(t testing.TB) *Key {
	seedOnce.Do(func() { seedKey = mustKey(t, "alice@example.org") })
	return seedKey
}

func FuzzParseAutocrypt(f *testing.F) {
	k := fuzzKey(f)
	field := AutocryptField("alice@example.org", k.Public(), true)
	v := strings.TrimPrefix(strings.ReplaceAll(field, "\r\n", ""), "Autocrypt: ")
	f.Add(v)
	f.Add("addr=alice@example.org; keydata=")
	f.Add("addr=a@b; _x=1; keydata=mQINBF")
	f.Add(";;;=;")
	f.Fuzz(func(t *testing.T, v string) {
		ac, err := ParseAutocrypt(v, testNow)
		if err == nil && (ac.Key == nil || !ac.Key.HasAddress(ac.Addr) || len(v) > MaxAutocryptHeader) {
			t.Fatalf("accepted an invalid header: %+v", ac)
		}
	})
}

func FuzzMessageAutocrypt(f *testing.F) {
	k := fuzzKey(f)
	f.Add([]byte("From: alice@example.org\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n" + AutocryptField("alice@example.org", k.Public(), false) + "\r\nbody"))
	f.Add([]byte("From: a\n\tb\nAutocrypt: addr=a@b\n\n"))
	f.Add([]byte(" \r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ac, _, err := MessageAutocrypt(msg, testNow)
		if err == nil && ac == nil {
			t.Fatal("nil result without an error")
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	k := fuzzKey(f)
	f.Add(k.Public().Bytes())
	f.Add([]byte(k.Public().Armored()))
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ==\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Add([]byte{0x99, 0x00, 0x33, 0x04})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePublicKey(data, testNow)
		if err == nil && (len(data) > MaxKeySize || p.Fingerprint() == "") {
			t.Fatal("accepted an invalid key")
		}
	})
}

func FuzzDecryptMIME(f *testing.F) {
	k := fuzzKey(f)
	enc, err := EncryptMIME([]byte(plainMsg), []*PublicKey{k.Public()}, nil, testNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Add([]byte("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nwV4D\r\n-----END PGP MESSAGE-----\r\n--b--\r\n"))
	f.Add([]byte(plainMsg))
	f.Fuzz(func(t *testing.T, msg []byte) {
		d, err := k.DecryptMIME(msg, nil, testNow)
		if err == nil && (d == nil || len(d.Message) > MaxMessageSize+len(msg)) {
			t.Fatal("bad result")
		}
	})
}
