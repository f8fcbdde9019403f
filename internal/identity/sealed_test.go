package identity

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealedFields(t *testing.T) {
	p := KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}
	ad := func(salt []byte) []byte { return append([]byte("ad"), salt...) }
	var s SealedFields
	if err := s.Seal([]byte("pass"), []byte("secret"), p, ad); err != nil {
		t.Fatal(err)
	}
	if s.KDF != "argon2id" || s.Time != 1 || s.MemoryKiB != 64 || s.Threads != 1 {
		t.Fatalf("%+v", s)
	}
	got, err := s.Open([]byte("pass"), ad)
	if err != nil || !bytes.Equal(got, []byte("secret")) {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := s.Open([]byte("wrong"), ad); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong: %v", err)
	}
	for name, mutate := range map[string]func(*SealedFields){
		"kdf":    func(s *SealedFields) { s.KDF = "scrypt" },
		"memory": func(s *SealedFields) { s.MemoryKiB = 1 << 30 },
		"time":   func(s *SealedFields) { s.Time = 0 },
		"salt":   func(s *SealedFields) { s.Salt = "zz" },
		"nonce":  func(s *SealedFields) { s.Nonce = "00" },
	} {
		c := s
		mutate(&c)
		if _, err := c.Open([]byte("pass"), ad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
