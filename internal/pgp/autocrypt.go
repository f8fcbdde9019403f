package pgp

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Autocrypt (Autocrypt Level 1, https://autocrypt.org/level1.html).

// MaxAutocryptHeader bounds one Autocrypt header field's value: the base64 of a MaxKeySize key and room
// for the other attributes and folding.
const MaxAutocryptHeader = MaxKeySize*4/3 + 4096

// ErrAutocrypt is wrapped by every error about an Autocrypt header.
var ErrAutocrypt = errors.New("pgp: Autocrypt header")

// Autocrypt is a parsed Autocrypt header (Level 1 §2.1): the sender's address, its key and whether it
// prefers encrypted replies (prefer-encrypt=mutual).
type Autocrypt struct {
	Addr          string // lower-cased
	PreferEncrypt bool
	Key           *PublicKey
}

// AutocryptField returns the whole header field, "Autocrypt: addr=…; [prefer-encrypt=mutual; ]keydata=…"
// folded into lines of at most 78 characters and ending in CRLF, for our outgoing Internet mail (Level 1
// §2.1). addr must be the From address of the mail it goes into.
func AutocryptField(addr string, k *PublicKey, mutual bool) string {
	var b strings.Builder
	b.WriteString("Autocrypt: addr=" + addr + ";")
	if mutual {
		b.WriteString(" prefer-encrypt=mutual;")
	}
	b.WriteString(" keydata=\r\n")
	kd := base64.StdEncoding.EncodeToString(k.Bytes())
	for len(kd) > 0 {
		n := min(len(kd), 76)
		b.WriteString(" " + kd[:n] + "\r\n")
		kd = kd[n:]
	}
	return b.String()
}

// ParseAutocrypt parses an Autocrypt header field's value (Level 1 §2.1): semicolon-separated
// attributes; addr and keydata are required; prefer-encrypt is "mutual" or anything else (no
// preference); attributes whose name starts with "_" are ignored, any other unknown attribute makes
// the header invalid. keydata must be one usable OpenPGP certificate (ParsePublicKey at now) with a user
// ID for addr.
func ParseAutocrypt(value string, now time.Time) (*Autocrypt, error) {
	if len(value) > MaxAutocryptHeader {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrAutocrypt, len(value), MaxAutocryptHeader)
	}
	var ac Autocrypt
	var keydata string
	seen := map[string]bool{}
	for attr := range strings.SplitSeq(value, ";") {
		attr = strings.TrimSpace(attr)
		if attr == "" {
			continue
		}
		name, val, ok := strings.Cut(attr, "=")
		if !ok {
			return nil, fmt.Errorf("%w: attribute %.40q without a value", ErrAutocrypt, attr)
		}
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if seen[name] {
			return nil, fmt.Errorf("%w: attribute %.40q twice", ErrAutocrypt, name)
		}
		seen[name] = true
		switch {
		case name == "addr":
			a, err := mail.ParseAddress(val)
			if err != nil || a.Address != val {
				return nil, fmt.Errorf("%w: addr %.80q is not an address", ErrAutocrypt, val)
			}
			ac.Addr = strings.ToLower(val)
		case name == "prefer-encrypt":
			ac.PreferEncrypt = val == "mutual"
		case name == "keydata":
			keydata = val
		case strings.HasPrefix(name, "_"):
		default:
			return nil, fmt.Errorf("%w: unknown critical attribute %.40q", ErrAutocrypt, name)
		}
	}
	if ac.Addr == "" || keydata == "" {
		return nil, fmt.Errorf("%w: addr and keydata are required", ErrAutocrypt)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, keydata))
	if err != nil {
		return nil, fmt.Errorf("%w: keydata is not base64", ErrAutocrypt)
	}
	k, err := ParsePublicKey(raw, now)
	if err != nil {
		return nil, fmt.Errorf("%w: keydata: %w", ErrAutocrypt, err)
	}
	if !k.HasAddress(ac.Addr) {
		return nil, fmt.Errorf("%w: the key has no user ID for %s", ErrAutocrypt, ac.Addr)
	}
	ac.Key = k
	return &ac, nil
}

// MessageAutocrypt reads the Autocrypt header of an inbound message (Level 1 §2.3): the message must
// have one From address and exactly one Autocrypt header, valid and whose addr is that From address;
// otherwise it returns nil (and why, as err). date is the message's effective date: its Date field, or
// now if that is missing, malformed or in the future.
func MessageAutocrypt(msg []byte, now time.Time) (ac *Autocrypt, date time.Time, err error) {
	fields, _, err := splitMessage(headerOnly(msg))
	if err != nil {
		return nil, now, fmt.Errorf("%w: %v", ErrAutocrypt, err)
	}
	var from, dateVal string
	var acs []string
	for _, f := range fields {
		v := unfold(f)
		switch strings.ToLower(f.name) {
		case "from":
			from = v
		case "date":
			dateVal = v
		case "autocrypt":
			acs = append(acs, v)
		}
	}
	date = now
	if d, err := mail.ParseDate(dateVal); err == nil && d.Before(now) {
		date = d
	}
	if len(acs) != 1 {
		return nil, date, fmt.Errorf("%w: %d Autocrypt headers (want exactly 1)", ErrAutocrypt, len(acs))
	}
	fa, err := mail.ParseAddressList(from)
	if err != nil || len(fa) != 1 {
		return nil, date, fmt.Errorf("%w: no single From address", ErrAutocrypt)
	}
	ac, err = ParseAutocrypt(acs[0], now)
	if err != nil {
		return nil, date, err
	}
	if !strings.EqualFold(ac.Addr, fa[0].Address) {
		return nil, date, fmt.Errorf("%w: addr %s is not the From address %s", ErrAutocrypt, ac.Addr, fa[0].Address)
	}
	return ac, date, nil
}

// headerOnly returns msg up to its empty line (a bounded header: at most MaxAutocryptHeader*4 bytes).
func headerOnly(msg []byte) []byte {
	if len(msg) > MaxAutocryptHeader*4 {
		msg = msg[:MaxAutocryptHeader*4]
	}
	return msg
}

// unfold returns a field's value with its line breaks removed (RFC 5322 §2.2.3).
func unfold(f field) string {
	v := strings.ReplaceAll(f.value(), "\r\n", "")
	return strings.TrimSpace(v)
}
