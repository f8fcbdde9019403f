// Package mimeparttest is test support for the MIME parser's bounds: the nested-multipart "bomb" that
// the parser (package mimepart) and the IMAP front door are tested against. Only tests import it.
package mimeparttest

import (
	"fmt"
	"strings"
)

// Bomb is the mail of issue 12: levels nested multiparts, about 60 bytes a level.
func Bomb(levels int) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n")
	for i := 0; i < levels; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nbottom\r\n")
	for i := levels - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return []byte(b.String())
}
