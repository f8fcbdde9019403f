package e2e

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/pgp"
	"github.com/tanglemail/tanglemail/internal/pgp/gpgtest"
)

// TestGPGCorrespondent: bob uses GnuPG (Debian's gpg 2.2). His mail carries an Autocrypt header made from
// his gpg key; alice's node learns it, encrypts her answer to him, and gpg decrypts it and verifies her
// signature. gpg then encrypts to the key of alice's Autocrypt header, and alice's node decrypts it and
// marks it, with bob's signature good.
func TestGPGCorrespondent(t *testing.T) {
	g := gpgtest.New(t)
	e := open(t, nil)
	bobKey, err := pgp.ParsePublicKey(g.GenKey("bob@example.net"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// bob's first mail, with his Autocrypt header (the key as gpg exports it, in binary, base64).
	bin := g.Run(nil, "--export", "bob@example.net")
	first := "From: bob@example.net\r\nTo: alice@gw.test\r\nDate: " + time.Now().Add(-time.Minute).Format(time.RFC1123Z) + "\r\n" +
		"Autocrypt: addr=bob@example.net; keydata=" + base64.StdEncoding.EncodeToString(bin) + "\r\nSubject: hi\r\n\r\nhi alice\r\n"
	if f, err := e.Inbound(ctx, []byte(first)); err != nil || !f.Learnt {
		t.Fatalf("learn gpg's key: %v %+v", err, f)
	}

	// alice answers; gpg decrypts and checks her signature (her key from her Autocrypt header).
	out, err := e.Prepare(ctx, []byte("From: alice@gw.test\r\nTo: bob@example.net\r\nSubject: re: hi\r\n\r\nsecret answer\r\n"), []string{"bob@example.net"})
	if err != nil || !out.Encrypted {
		t.Fatalf("%v %+v", err, out)
	}
	ac, _, err := pgp.MessageAutocrypt(out.Message, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	g.Run([]byte(ac.Key.Armored()), "--import")
	plain, errOut, err := g.Try(gpgtest.ArmoredMessage(t, out.Message), "--status-fd", "2", "--decrypt")
	if err != nil || !bytes.Contains(plain, []byte("\r\n\r\nsecret answer\r\n")) || !bytes.Contains(errOut, []byte("[GNUPG:] GOODSIG")) {
		t.Fatalf("gpg: %v\n%s\n%s", err, plain, errOut)
	}

	// bob writes back with gpg, signed and encrypted to alice's Autocrypt key.
	armored := g.Run([]byte("Content-Type: text/plain\r\n\r\nthanks, from gpg\r\n"), "--armor", "--sign", "--local-user", "bob@example.net", "--encrypt", "--recipient", "alice@gw.test")
	msg := gpgtest.PGPMIME("From: bob@example.net\r\nTo: alice@gw.test\r\nSubject: re: re: hi\r\n", armored)
	f, err := e.Inbound(ctx, msg)
	if err != nil || !f.Decrypted {
		t.Fatalf("%v %+v", err, f)
	}
	mark := "X-Tanglemail-E2E: openpgp; key=" + e.Key.Fingerprint() + "; signature=good; signer=" + bobKey.Fingerprint() + "\r\n"
	if !strings.HasPrefix(string(f.Message), mark) || !bytes.HasSuffix(f.Message, []byte("\r\n\r\nthanks, from gpg\r\n")) {
		t.Fatalf("filed:\n%s", f.Message)
	}
}
