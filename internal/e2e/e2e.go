// Package e2e owns end-to-end encryption of a user's Internet mail with OpenPGP users (docs/protocol.md
// §16): what the node does to outgoing Internet mail before it reaches the gateway,
// and to inbound Internet mail before it is filed. It sits in the services layer, beside the gateway:
// it uses internal/pgp (keys, PGP/MIME, Autocrypt), internal/pgp/wkd (Web Key Directory) and
// internal/sqlitedb (the peer-key table), and nothing above them.
//
//   - Outgoing (Prepare, EncryptOutgoing): the mail gets our Autocrypt header, and is encrypted as
//     PGP/MIME to every recipient and to ourselves when every Internet recipient has a key — from the
//     peer-key table (Autocrypt), then from the recipient's Web Key Directory. If one recipient has
//     none, the mail goes unchanged (never encrypted to some recipients only) with the reason.
//   - Inbound (Inbound): the Autocrypt header of the mail is learnt (newest date wins); any
//     X-Tanglemail-E2E field the mail arrived with is removed (a sender cannot forge the mark); a
//     PGP/MIME message encrypted to our key is decrypted and marked with X-Tanglemail-E2E, which the
//     web client shows. A PGP/MIME message we cannot decrypt is filed as it came, unmarked.
//
// Invariants: the mark is only ever written by Inbound, after a successful decryption with the user's
// key. A message is encrypted to all its recipients or to none.
//
// Locking: an E2E is safe for concurrent use; the peer table serializes its writes in SQLite (one
// connection, BEGIN IMMEDIATE). Its fields are set once before use.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	tmmail "github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/pgp"
	"github.com/tanglemail/tanglemail/internal/pgp/wkd"
)

// MarkField is the header field Inbound adds to a decrypted message (docs/protocol.md §16.2).
const MarkField = tmmail.E2EMarkField

// KeyLookup finds a correspondent's published key: a *wkd.Cache over a *wkd.Client in production, a
// stub in tests.
// It returns an error wrapping wkd.ErrNotFound when none is published.
type KeyLookup interface {
	Lookup(ctx context.Context, addr string) (*pgp.PublicKey, error)
}

// E2E is one user's end-to-end state: their Internet address and OpenPGP key, the peer-key table and
// the key directory lookup.
type E2E struct {
	Addr   string   // the user's Internet address (the From of their Internet mail), lower-cased
	Key    *pgp.Key // the user's OpenPGP key
	Peers  *Peers
	Lookup KeyLookup        // nil: no Web Key Directory lookups
	Now    func() time.Time // nil: time.Now
}

// Open loads (or, the first time, creates) the user's OpenPGP key for addr in dataDir (pgp.KeyFile,
// sealed under passphrase like the identity) and opens the peer-key table (PeersFile). lookup may be
// nil.
func Open(dataDir, addr string, passphrase []byte, lookup KeyLookup) (*E2E, error) {
	path := filepath.Join(dataDir, pgp.KeyFile)
	k, err := pgp.LoadKey(path, passphrase)
	if errors.Is(err, os.ErrNotExist) {
		k, err = pgp.CreateKey(path, addr, passphrase)
	}
	if err != nil {
		return nil, err
	}
	if !k.Public().HasAddress(addr) {
		return nil, fmt.Errorf("e2e: the OpenPGP key in %s is for %v, not %s", path, k.Public().Addresses(), addr)
	}
	peers, err := OpenPeers(filepath.Join(dataDir, PeersFile))
	if err != nil {
		return nil, err
	}
	return &E2E{Addr: strings.ToLower(addr), Key: k, Peers: peers, Lookup: lookup}, nil
}

// Close closes the peer table.
func (e *E2E) Close() error { return e.Peers.Close() }

func (e *E2E) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Outcome is what the outgoing path did to a message.
type Outcome struct {
	Message   []byte
	Encrypted bool
	Reason    string // why it was not encrypted (empty when it was)
}

// Prepare is the outgoing path for Internet mail: it adds our Autocrypt header (AddAutocrypt), then
// encrypts the message (EncryptOutgoing). rcpts are the message's Internet recipients (envelope RCPT
// TO, Bcc included).
func (e *E2E) Prepare(ctx context.Context, msg []byte, rcpts []string) (Outcome, error) {
	return e.EncryptOutgoing(ctx, e.AddAutocrypt(msg), rcpts)
}

// AddAutocrypt returns msg with our Autocrypt header (prefer-encrypt=mutual) added at the top, if its
// From is the user's address and it has no Autocrypt header yet (Autocrypt Level 1 §2.1); otherwise msg.
func (e *E2E) AddAutocrypt(msg []byte) []byte {
	h := header(msg)
	if _, ok := h.get("Autocrypt"); ok {
		return msg
	}
	from, _ := h.get("From")
	fa, err := mail.ParseAddressList(from)
	if err != nil || len(fa) != 1 || !strings.EqualFold(fa[0].Address, e.Addr) {
		return msg
	}
	f := pgp.AutocryptField(fa[0].Address, e.Key.Public(), true)
	return append([]byte(f), msg...)
}

// EncryptOutgoing returns msg encrypted as PGP/MIME to every recipient and to the user when each of
// rcpts has a key (the peer table first, then the key directory), else msg unchanged with the reason.
// An error is returned only when encryption itself fails; a missing key or a failed lookup is a reason.
func (e *E2E) EncryptOutgoing(ctx context.Context, msg []byte, rcpts []string) (Outcome, error) {
	unchanged := func(format string, a ...any) (Outcome, error) {
		return Outcome{Message: msg, Reason: fmt.Sprintf(format, a...)}, nil
	}
	if len(rcpts) == 0 {
		return unchanged("no recipients")
	}
	if pgp.IsEncryptedMIME(msg) {
		return unchanged("already PGP/MIME encrypted")
	}
	now := e.now()
	keys := make([]*pgp.PublicKey, 0, len(rcpts))
	for _, r := range rcpts {
		p, ok, err := e.Peers.Get(ctx, r, now)
		if err != nil {
			return unchanged("peer table: %v", err)
		}
		if ok {
			keys = append(keys, p.Key)
			continue
		}
		if e.Lookup == nil {
			return unchanged("no OpenPGP key for %s", r)
		}
		k, err := e.Lookup.Lookup(ctx, r)
		if errors.Is(err, wkd.ErrNotFound) {
			return unchanged("no OpenPGP key for %s", r)
		}
		if err != nil {
			return unchanged("key lookup for %s failed: %v", r, err)
		}
		keys = append(keys, k)
	}
	enc, err := pgp.EncryptMIME(msg, keys, e.Key, now)
	if err != nil {
		return Outcome{Message: msg}, fmt.Errorf("e2e: %w", err)
	}
	return Outcome{Message: enc, Encrypted: true}, nil
}

// Filed is what the inbound path did to a message.
type Filed struct {
	Message   []byte
	Decrypted bool
	Learnt    bool   // the message's Autocrypt header updated the peer table
	Reason    string // why an encrypted message was not decrypted (empty otherwise)
}

// Inbound is the inbound path for Internet mail, before the message is filed: it learns the sender's
// Autocrypt header, removes any X-Tanglemail-E2E field the message came with, and decrypts a PGP/MIME
// message encrypted to the user's key, marking it (docs/protocol.md §16.2). It returns an error only
// when the peer table fails; a message it cannot decrypt is filed as it came, with the reason.
func (e *E2E) Inbound(ctx context.Context, msg []byte) (Filed, error) {
	now := e.now()
	var f Filed
	if ac, date, err := pgp.MessageAutocrypt(msg, now); err == nil {
		learnt, err := e.Peers.Learn(ctx, ac, date, now)
		if err != nil {
			return Filed{Message: tmmail.StripE2EMark(msg)}, err
		}
		f.Learnt = learnt
	}
	msg = tmmail.StripE2EMark(msg)
	f.Message = msg
	if !pgp.IsEncryptedMIME(msg) {
		return f, nil
	}
	var senders []*pgp.PublicKey
	h := header(msg)
	from, _ := h.get("From")
	if fa, err := mail.ParseAddressList(from); err == nil && len(fa) == 1 {
		if p, ok, err := e.Peers.Get(ctx, fa[0].Address, now); err == nil && ok {
			senders = append(senders, p.Key)
		}
	}
	d, err := e.Key.DecryptMIME(msg, senders, now)
	if err != nil {
		f.Reason = err.Error()
		return f, nil
	}
	sig := "none"
	switch {
	case d.Signed && !d.SignerKnown:
		sig = "unknown-key"
	case d.Signed && d.SignatureError != nil:
		sig = "bad"
	case d.Signed:
		sig = "good; signer=" + d.SignerFingerprint
	}
	mark := MarkField + ": openpgp; key=" + e.Key.Fingerprint() + "; signature=" + sig + "\r\n"
	// The decrypted part may carry header fields of its own (protected headers): a mark among them is
	// removed too.
	f.Message = append([]byte(mark), tmmail.StripE2EMark(d.Message)...)
	f.Decrypted = true
	return f, nil
}

// StripMark returns msg without any X-Tanglemail-E2E field (MarkField). Inbound does it for Internet
// mail; the inbox does it for every mail it files (internal/mail.StripE2EMark), so that the mark the web client
// shows is only ever the node's own.
func StripMark(msg []byte) []byte { return tmmail.StripE2EMark(msg) }

// hdr is a message's header section as raw fields.
type hdr []rawField

type rawField struct {
	name string
	raw  []byte // with its continuation lines and line ends
}

// header splits msg's header section (up to the first empty line) into fields. Lines before a field
// name (a leading continuation) or without a colon are kept as fields with an empty name.
func header(msg []byte) hdr {
	var h hdr
	rest := msg
	for len(rest) > 0 {
		end := bytes.IndexByte(rest, '\n') + 1
		if end == 0 {
			end = len(rest)
		}
		line := rest[:end]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(h) > 0 {
			h[len(h)-1].raw = append(h[len(h)-1].raw, line...)
		} else {
			name := ""
			if c := bytes.IndexByte(line, ':'); c > 0 {
				name = string(bytes.TrimSpace(line[:c]))
			}
			h = append(h, rawField{name: name, raw: bytes.Clone(line)})
		}
		rest = rest[end:]
	}
	return h
}

// get returns the unfolded value of the first field called name.
func (h hdr) get(name string) (string, bool) {
	for _, f := range h {
		if strings.EqualFold(f.name, name) {
			v := string(f.raw[bytes.IndexByte(f.raw, ':')+1:])
			v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
