package pgp

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAutocryptRoundTrip(t *testing.T) {
	k := mustKey(t, "alice@example.org")
	f := AutocryptField("alice@example.org", k.Public(), true)
	for _, l := range strings.Split(strings.TrimSuffix(f, "\r\n"), "\r\n") {
		if len(l) > 78 {
			t.Fatalf("line of %d characters: %q", len(l), l)
		}
	}
	msg := "From: Alice <Alice@Example.org>\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n" + f + "Subject: hi\r\n\r\nbody\r\n"
	ac, date, err := MessageAutocrypt([]byte(msg), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if ac.Addr != "alice@example.org" || !ac.PreferEncrypt || ac.Key.Fingerprint() != k.Fingerprint() {
		t.Fatalf("%+v", ac)
	}
	if !date.Equal(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("date %v", date)
	}
	// A Date in the future counts as now (Level 1 §2.3).
	future := strings.Replace(msg, "Sat, 05 Dec 2026", "Sat, 05 Dec 2099", 1)
	if _, date, err := MessageAutocrypt([]byte(future), testNow); err != nil || !date.Equal(testNow) {
		t.Fatalf("future: %v %v", date, err)
	}
	noPref := AutocryptField("alice@example.org", k.Public(), false)
	ac, err = ParseAutocrypt(strings.TrimPrefix(strings.ReplaceAll(noPref, "\r\n", ""), "Autocrypt: "), testNow)
	if err != nil || ac.PreferEncrypt {
		t.Fatalf("%v %+v", err, ac)
	}
}

func TestAutocryptRefuses(t *testing.T) {
	k := mustKey(t, "alice@example.org")
	kd := strings.TrimSpace(strings.ReplaceAll(strings.SplitN(AutocryptField("alice@example.org", k.Public(), false), "keydata=", 2)[1], "\r\n", ""))
	for name, v := range map[string]string{
		"no addr":           "keydata=" + kd,
		"no keydata":        "addr=alice@example.org",
		"critical unknown":  "addr=alice@example.org; color=blue; keydata=" + kd,
		"other addr":        "addr=mallory@example.org; keydata=" + kd,
		"bad base64":        "addr=alice@example.org; keydata=!!!",
		"not a key":         "addr=alice@example.org; keydata=aGVsbG8=",
		"twice":             "addr=alice@example.org; addr=alice@example.org; keydata=" + kd,
		"no value":          "addr; keydata=" + kd,
		"display name addr": "addr=Alice <alice@example.org>; keydata=" + kd,
		"huge":              "addr=alice@example.org; keydata=" + strings.Repeat("A", MaxAutocryptHeader),
	} {
		if _, err := ParseAutocrypt(v, testNow); !errors.Is(err, ErrAutocrypt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseAutocrypt("addr=alice@example.org; _ignored=x; keydata="+kd, testNow); err != nil {
		t.Errorf("_ attribute: %v", err)
	}
	f := AutocryptField("alice@example.org", k.Public(), false)
	for name, msg := range map[string]string{
		"two headers":    "From: alice@example.org\r\n" + f + f + "\r\n",
		"none":           "From: alice@example.org\r\n\r\n",
		"from mismatch":  "From: eve@example.org\r\n" + f + "\r\n",
		"two from":       "From: alice@example.org, eve@example.org\r\n" + f + "\r\n",
		"broken header":  "From alice\r\n" + f + "\r\n",
		"continuation 1": " x\r\n" + f,
	} {
		if ac, _, err := MessageAutocrypt([]byte(msg), testNow); err == nil || ac != nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
