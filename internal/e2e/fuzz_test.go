package e2e

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzStripMark: whatever header an Internet sender writes, no X-Tanglemail-E2E field survives in the
// header section the mail clients read, and the body is untouched.
func FuzzStripMark(f *testing.F) {
	f.Add([]byte("X-Tanglemail-E2E: openpgp\r\nFrom: a@b\r\n\r\nbody"))
	f.Add([]byte(" folded\r\nX-Tanglemail-E2E: x\r\n y\r\n\r\n"))
	f.Add([]byte("x-tanglemail-e2e :x\nX-TANGLEMAIL-E2E:\n\n"))
	f.Add([]byte("X-Tanglemail-E2E: no end"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > 1<<16 {
			return
		}
		out := StripMark(msg)
		for _, fl := range header(out) {
			if strings.EqualFold(fl.name, MarkField) {
				t.Fatalf("mark survived in %q", out)
			}
		}
		if n := len(header(msg)); n > 0 {
			end := 0
			for _, fl := range header(msg) {
				end += len(fl.raw)
			}
			if !bytes.HasSuffix(out, msg[end:]) {
				t.Fatalf("body changed: %q → %q", msg, out)
			}
		}
	})
}
