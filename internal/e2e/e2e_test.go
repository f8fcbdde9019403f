package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/pgp"
	"github.com/tanglemail/tanglemail/internal/pgp/wkd"
)

func init() { pgp.KeyKDF = identity.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1} }

var ctx = context.Background()

// stubLookup is a key directory holding keys by address.
type stubLookup map[string]*pgp.PublicKey

func (s stubLookup) Lookup(_ context.Context, addr string) (*pgp.PublicKey, error) {
	if k, ok := s[strings.ToLower(addr)]; ok {
		return k, nil
	}
	if addr == "broken@example.net" {
		return nil, fmt.Errorf("%w: connection refused", wkd.ErrLookup)
	}
	return nil, wkd.ErrNotFound
}

func open(t *testing.T, lookup KeyLookup) *E2E {
	t.Helper()
	e, err := Open(t.TempDir(), "alice@gw.test", []byte("pass"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func peerKey(t *testing.T, addr string) *pgp.Key {
	t.Helper()
	k, err := pgp.Generate(addr, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mailFrom is a mail from addr carrying its Autocrypt header, dated date.
func mailFrom(addr string, k *pgp.Key, date time.Time) []byte {
	return []byte("From: " + addr + "\r\nTo: alice@gw.test\r\nDate: " + date.Format(time.RFC1123Z) + "\r\n" +
		pgp.AutocryptField(addr, k.Public(), true) + "Subject: hi\r\n\r\nhello\r\n")
}

const outMsg = "From: Alice <alice@gw.test>\r\nTo: bob@example.net, carol@example.org\r\nSubject: plans\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n\r\nMeet at noon.\r\n"

func TestOutgoing(t *testing.T) {
	bob, carol := peerKey(t, "bob@example.net"), peerKey(t, "carol@example.org")
	e := open(t, stubLookup{"carol@example.org": carol.Public()})
	// bob's key comes from his Autocrypt header, carol's from her key directory.
	if f, err := e.Inbound(ctx, mailFrom("bob@example.net", bob, time.Now().Add(-time.Minute))); err != nil || !f.Learnt {
		t.Fatalf("learn: %v %+v", err, f)
	}
	out, err := e.Prepare(ctx, []byte(outMsg), []string{"bob@example.net", "carol@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Encrypted || out.Reason != "" || bytes.Contains(out.Message, []byte("noon")) {
		t.Fatalf("%+v\n%s", out, out.Message)
	}
	if !bytes.HasPrefix(out.Message, []byte("Autocrypt: addr=alice@gw.test; prefer-encrypt=mutual; keydata=\r\n")) {
		t.Fatalf("no Autocrypt header:\n%s", out.Message)
	}
	// Every recipient, and alice herself (the sent copy), reads it.
	for _, k := range []*pgp.Key{bob, carol, e.Key} {
		d, err := k.DecryptMIME(out.Message, []*pgp.PublicKey{e.Key.Public()}, time.Now())
		if err != nil || !bytes.Contains(d.Message, []byte("Meet at noon.")) || d.SignatureError != nil || !d.SignerKnown {
			t.Fatalf("%s: %v %+v", k.Fingerprint(), err, d)
		}
	}
	// One recipient without a key: the mail goes unchanged (with the Autocrypt header), with the reason.
	out, err = e.Prepare(ctx, []byte(outMsg), []string{"bob@example.net", "dave@example.com"})
	if err != nil || out.Encrypted || out.Reason != "no OpenPGP key for dave@example.com" || !bytes.HasSuffix(out.Message, []byte(outMsg)) {
		t.Fatalf("%v %+v", err, out)
	}
	out, err = e.EncryptOutgoing(ctx, []byte(outMsg), []string{"broken@example.net"})
	if err != nil || out.Encrypted || !strings.Contains(out.Reason, "lookup for broken@example.net failed") || string(out.Message) != outMsg {
		t.Fatalf("%v %+v", err, out)
	}
	// Mail not from the user's address gets no Autocrypt header.
	other := strings.Replace(outMsg, "alice@gw.test", "mallory@gw.test", 1)
	if got := e.AddAutocrypt([]byte(other)); string(got) != other {
		t.Fatal("Autocrypt header for another From")
	}
	if out, _ := e.EncryptOutgoing(ctx, []byte(outMsg), nil); out.Encrypted {
		t.Fatal("encrypted to nobody")
	}
}

func TestNewestDateWins(t *testing.T) {
	e := open(t, nil)
	k1, k2 := peerKey(t, "bob@example.net"), peerKey(t, "bob@example.net")
	now := time.Now()
	if f, _ := e.Inbound(ctx, mailFrom("bob@example.net", k2, now.Add(-time.Hour))); !f.Learnt {
		t.Fatal("first key not learnt")
	}
	// An older mail read later does not roll the key back.
	if f, _ := e.Inbound(ctx, mailFrom("bob@example.net", k1, now.Add(-2*time.Hour))); f.Learnt {
		t.Fatal("older mail replaced the key")
	}
	p, ok, err := e.Peers.Get(ctx, "Bob@Example.NET", now)
	if err != nil || !ok || p.Key.Fingerprint() != k2.Fingerprint() || !p.PreferEncrypt {
		t.Fatalf("%v %v %+v", err, ok, p)
	}
	// A newer one does.
	if f, _ := e.Inbound(ctx, mailFrom("bob@example.net", k1, now.Add(-time.Minute))); !f.Learnt {
		t.Fatal("newer mail not learnt")
	}
	if p, _, _ := e.Peers.Get(ctx, "bob@example.net", now); p.Key.Fingerprint() != k1.Fingerprint() {
		t.Fatal("newer key not kept")
	}
	// A header whose addr is not the From is ignored (Autocrypt Level 1 §2.3).
	spoof := bytes.Replace(mailFrom("bob@example.net", k2, now), []byte("From: bob@example.net"), []byte("From: eve@example.net"), 1)
	if f, _ := e.Inbound(ctx, spoof); f.Learnt {
		t.Fatal("learnt a header for another From")
	}
	if _, ok, _ := e.Peers.Get(ctx, "eve@example.net", now); ok {
		t.Fatal("eve has a key")
	}
}

func TestInbound(t *testing.T) {
	e := open(t, nil)
	bob := peerKey(t, "bob@example.net")
	plain := "From: bob@example.net\r\nTo: alice@gw.test\r\nDate: " + time.Now().Add(-time.Minute).Format(time.RFC1123Z) + "\r\n" +
		pgp.AutocryptField("bob@example.net", bob.Public(), true) +
		"X-Tanglemail-E2E: openpgp; key=forged\r\nSubject: secret\r\nContent-Type: text/plain\r\n\r\nThe code is 1234.\r\n"
	enc, err := pgp.EncryptMIME([]byte(plain), []*pgp.PublicKey{e.Key.Public()}, bob, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.Inbound(ctx, enc)
	if err != nil || !f.Decrypted || !f.Learnt {
		t.Fatalf("%v %+v", err, f)
	}
	want := "X-Tanglemail-E2E: openpgp; key=" + e.Key.Fingerprint() + "; signature=good; signer=" + bob.Fingerprint() + "\r\n"
	if !bytes.HasPrefix(f.Message, []byte(want)) || bytes.Count(f.Message, []byte("X-Tanglemail-E2E")) != 1 ||
		!bytes.Contains(f.Message, []byte("\r\n\r\nThe code is 1234.\r\n")) {
		t.Fatalf("filed:\n%s", f.Message)
	}
	// A plain message's forged mark is removed; nothing else changes.
	f, err = e.Inbound(ctx, []byte(plain))
	if err != nil || f.Decrypted || bytes.Contains(f.Message, []byte("X-Tanglemail-E2E")) || !bytes.Contains(f.Message, []byte("The code is 1234.")) {
		t.Fatalf("%v %+v", err, f)
	}
	// Encrypted to someone else: filed as it came (without a mark), with the reason.
	carol := peerKey(t, "carol@example.org")
	other, _ := pgp.EncryptMIME([]byte(plain), []*pgp.PublicKey{carol.Public()}, nil, time.Now())
	f, err = e.Inbound(ctx, other)
	if err != nil || f.Decrypted || !strings.Contains(f.Reason, "not encrypted to our key") || bytes.Contains(f.Message, []byte("X-Tanglemail-E2E")) {
		t.Fatalf("%v %+v", err, f)
	}
	// Unsigned: signature=none.
	uns, _ := pgp.EncryptMIME([]byte("From: x@example.com\r\n\r\nhi\r\n"), []*pgp.PublicKey{e.Key.Public()}, nil, time.Now())
	if f, _ := e.Inbound(ctx, uns); !bytes.HasPrefix(f.Message, []byte("X-Tanglemail-E2E: openpgp; key="+e.Key.Fingerprint()+"; signature=none\r\n")) {
		t.Fatalf("unsigned:\n%s", f.Message)
	}
}

func TestOpenKeepsKey(t *testing.T) {
	dir := t.TempDir()
	e1, err := Open(dir, "alice@gw.test", []byte("pass"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fp := e1.Key.Fingerprint()
	e1.Close()
	for _, name := range []string{pgp.KeyFile, PeersFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, err, st)
		}
	}
	e2, err := Open(dir, "alice@gw.test", []byte("pass"), nil)
	if err != nil || e2.Key.Fingerprint() != fp {
		t.Fatalf("%v", err)
	}
	e2.Close()
	if _, err := Open(dir, "alice@gw.test", []byte("wrong"), nil); !errors.Is(err, pgp.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := Open(dir, "other@gw.test", []byte("pass"), nil); err == nil {
		t.Fatal("opened alice's key for another address")
	}
}

func TestStripField(t *testing.T) {
	for in, want := range map[string]string{
		"A: 1\r\nX-Tanglemail-E2E: openpgp;\r\n key=x\r\nB: 2\r\n\r\nX-Tanglemail-E2E: body\r\n": "A: 1\r\nB: 2\r\n\r\nX-Tanglemail-E2E: body\r\n",
		"x-tanglemail-e2e: a\nB: 2\n\nbody": "B: 2\n\nbody",
		"B: 2\r\n\r\nbody":                  "B: 2\r\n\r\nbody",
		"X-Tanglemail-E2E: only":            "",
	} {
		if got := string(StripMark([]byte(in))); got != want {
			t.Errorf("StripMark(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStripMark(t *testing.T) {
	if got := string(StripMark([]byte("X-Tanglemail-E2E: openpgp\r\nFrom: a@b\r\n\r\nx"))); got != "From: a@b\r\n\r\nx" {
		t.Fatalf("%q", got)
	}
}
