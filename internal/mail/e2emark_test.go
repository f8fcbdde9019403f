package mail

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

var e2eMarkCases = []struct{ name, in, want string }{
	{"none", "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n", "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n"},
	{"forged", "From: a@b\r\nX-Tanglemail-E2E: openpgp; key=AB; signature=good\r\nSubject: hi\r\n\r\nbody\r\n",
		"From: a@b\r\nSubject: hi\r\n\r\nbody\r\n"},
	{"folded, odd case, space before colon, twice",
		"x-tanglemail-e2e : openpgp;\r\n key=AB\r\nFrom: a@b\r\nX-TANGLEMAIL-E2E: openpgp\n\tsignature=good\nTo: c@d\n\nbody\n",
		"From: a@b\r\nTo: c@d\n\nbody\n"},
	{"in the body only", "From: a@b\r\n\r\nX-Tanglemail-E2E: openpgp\r\n", "From: a@b\r\n\r\nX-Tanglemail-E2E: openpgp\r\n"},
	{"no body", "X-Tanglemail-E2E: openpgp\r\nFrom: a@b", "From: a@b"},
	{"leading continuation kept", " x\r\nX-Tanglemail-E2E: y\r\n\r\n", " x\r\n\r\n"},
}

func TestStripE2EMark(t *testing.T) {
	for _, c := range e2eMarkCases {
		if got := string(StripE2EMark([]byte(c.in))); got != c.want {
			t.Errorf("%s: StripE2EMark = %q, want %q", c.name, got, c.want)
		}
		got, err := io.ReadAll(StripE2EMarkReader(strings.NewReader(c.in)))
		if err != nil || string(got) != c.want {
			t.Errorf("%s: StripE2EMarkReader = %q, %v, want %q", c.name, got, err, c.want)
		}
	}
}

// TestStripE2EMarkReaderLongLines: lines longer than the filter's buffer (16 bytes here) arrive in
// pieces; a dropped field is dropped whole, a kept one kept whole, and the body passes unchanged.
func TestStripE2EMarkReaderLongLines(t *testing.T) {
	in := "Subject: " + strings.Repeat("s", 100) + "\r\n" +
		"X-Tanglemail-E2E: openpgp; key=" + strings.Repeat("k", 100) + "\r\n" +
		" folded " + strings.Repeat("f", 50) + "\r\n" +
		"To: c@d\r\n\r\n" + strings.Repeat("body line\r\n", 20)
	want := StripE2EMark([]byte(in))
	if bytes.Contains(want, []byte("openpgp")) {
		t.Fatalf("StripE2EMark kept the mark: %q", want)
	}
	got, err := io.ReadAll(newFieldFilter(strings.NewReader(in), E2EMarkField, 16))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("filter with a 16-byte buffer = %q, %v\nwant %q", got, err, want)
	}
}

// FuzzStripE2EMark: the streaming filter gives exactly the bytes of the in-memory one, and what
// StripE2EMark returns has no mark left in its header.
func FuzzStripE2EMark(f *testing.F) {
	for _, c := range e2eMarkCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want := StripE2EMark(in)
		if HasField(want, E2EMarkField) {
			t.Fatalf("mark left in %q", want)
		}
		got, err := io.ReadAll(StripE2EMarkReader(bytes.NewReader(in)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("reader = %q, %v, want %q", got, err, want)
		}
	})
}
