package mail

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Relay messages (protocol.md §15.4): a user's node asks a gateway to send a message to Internet
// addresses by sealing, to the gateway, a mail (§10.1, inline or chunked like any mail) whose message is
// a relay message:
//
//	Tanglemail-Relay: 1 CRLF
//	Tanglemail-Relay-To: <mailbox> CRLF        (1 to MaxRelayRecipients times)
//	the message to relay (RFC 5322)
//
// The relay fields come first and in this order; each Tanglemail-Relay-To names one Internet recipient,
// an RFC 5321 Mailbox without angle brackets. A relay message is itself a valid RFC 5322 message, so it
// passes unchanged through the mail path (StripBcc leaves it intact apart from the inner message's Bcc).
const (
	RelayField         = "Tanglemail-Relay"
	RelayToField       = "Tanglemail-Relay-To"
	RelayVersion       = "1"
	MaxRelayRecipients = 100 // RFC 5321 §4.5.3.1.8: the minimum an MTA must accept per message
)

// ErrRelayMalformed is wrapped by every error of ParseRelay for a message that starts as a relay
// message but is not a valid one.
var ErrRelayMalformed = errors.New("mail: malformed relay message")

var relayPrefix = []byte(RelayField + ": ")

// IsRelay reports whether raw starts as a relay message (its first field is Tanglemail-Relay); it may
// still be malformed (ParseRelay says).
func IsRelay(raw []byte) bool {
	return len(raw) >= len(relayPrefix) && bytes.EqualFold(raw[:len(relayPrefix)], relayPrefix)
}

// EncodeRelay builds the relay message for rcpts (each checked with CheckInternetAddress) and msg.
func EncodeRelay(rcpts []string, msg []byte) ([]byte, error) {
	if len(rcpts) == 0 || len(rcpts) > MaxRelayRecipients {
		return nil, fmt.Errorf("mail: relay: %d recipients, want 1 to %d", len(rcpts), MaxRelayRecipients)
	}
	if len(msg) == 0 {
		return nil, errors.New("mail: relay: empty message")
	}
	var b bytes.Buffer
	b.WriteString(RelayField + ": " + RelayVersion + "\r\n")
	for _, r := range rcpts {
		if err := CheckInternetAddress(r); err != nil {
			return nil, err
		}
		b.WriteString(RelayToField + ": " + r + "\r\n")
	}
	b.Write(msg)
	return b.Bytes(), nil
}

// ParseRelay splits a relay message into its recipients and the message to relay (a sub-slice of
// raw). Recipients are returned as written, duplicates (compared case-insensitively) removed. Errors
// wrap ErrRelayMalformed.
func ParseRelay(raw []byte) (rcpts []string, msg []byte, err error) {
	bad := func(format string, a ...any) ([]string, []byte, error) {
		return nil, nil, fmt.Errorf("%w: %s", ErrRelayMalformed, fmt.Sprintf(format, a...))
	}
	rest := raw
	line, rest, ok := relayLine(rest)
	if !ok {
		return bad("no relay field")
	}
	name, val, _ := strings.Cut(line, ":")
	if !strings.EqualFold(name, RelayField) || strings.TrimSpace(val) != RelayVersion {
		return bad("first field is not %s: %s", RelayField, RelayVersion)
	}
	seen := map[string]bool{}
	for {
		if len(rest) < len(RelayToField)+1 || !bytes.EqualFold(rest[:len(RelayToField)+1], []byte(RelayToField+":")) {
			break
		}
		line, rest, ok = relayLine(rest)
		if !ok {
			return bad("unterminated %s field", RelayToField)
		}
		addr := strings.TrimSpace(line[len(RelayToField)+1:])
		if err := CheckInternetAddress(addr); err != nil {
			return bad("%v", err)
		}
		if k := strings.ToLower(addr); !seen[k] {
			seen[k] = true
			rcpts = append(rcpts, addr)
		}
		if len(rcpts) > MaxRelayRecipients {
			return bad("more than %d recipients", MaxRelayRecipients)
		}
	}
	if len(rcpts) == 0 {
		return bad("no %s field", RelayToField)
	}
	if len(rest) == 0 {
		return bad("no message")
	}
	return rcpts, rest, nil
}

// relayLine returns the first line of b without its CRLF (or LF) and the rest; ok is false without a
// line ending or for a line longer than 1000 octets (RFC 5322 §2.1.1).
func relayLine(b []byte) (line string, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 || i > 1000 {
		return "", nil, false
	}
	l := b[:i]
	l = bytes.TrimSuffix(l, []byte("\r"))
	return string(l), b[i+1:], true
}

// CheckInternetAddress checks that a is an RFC 5321 Mailbox (local@domain, §4.1.2) without angle
// brackets that is not a tanglemail address: a local part of 1–64 octets and a domain of 1–255 octets
// with at least one dot, no spaces, controls, angle brackets or quotes, valid UTF-8 (RFC 6531 allows
// UTF-8), at most 254 octets in all (RFC 5321 §4.5.3.1.3 with the path's brackets).
func CheckInternetAddress(a string) error {
	if len(a) > 254 || !utf8.ValidString(a) {
		return fmt.Errorf("mail: %q is not an Internet mail address", a)
	}
	local, domain, ok := strings.Cut(a, "@")
	if !ok || local == "" || len(local) > 64 || domain == "" || len(domain) > 255 || strings.Contains(domain, "@") ||
		!strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.Contains(domain, "..") {
		return fmt.Errorf("mail: %q is not an Internet mail address (want local@domain.tld)", a)
	}
	for _, r := range a {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`<>()[]\,;:"`, r) {
			return fmt.Errorf("mail: %q is not an Internet mail address (character %q)", a, r)
		}
	}
	d := strings.ToLower(domain)
	if d == "tangle" || strings.HasSuffix(d, ".tangle") || d == "localhost" {
		return fmt.Errorf("mail: %q is not an Internet mail address", a)
	}
	return nil
}
