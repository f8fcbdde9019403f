// Package invite owns the invite (docs/protocol.md §11): a short, versioned text — a tanglemail: URI —
// that carries a user's address and the network addresses at which their node can be reached, so that a
// fresh node can join the network through a friend's node and add the friend as a contact in one step.
// It parses and formats invites, ranks a node's addresses for one, and says in words what an invite
// reveals. It has no state and does no I/O: the node dials the peers (through internal/p2p's ordinary
// connect path) and adds the contact.
//
// Notes:
//   - Parse is the only parser of invite input, which comes from users (a pasted link, a QR code) and so
//     from anyone: it bounds the whole text (MaxLen), the number of parameters, the number of peer
//     addresses (MaxAddrs) and the length of each value, never panics, and answers errors that say what
//     is wrong. It checks the form of peer ids and multiaddrs but not that they are dialable; p2p does
//     that when the node dials.
//   - String is canonical: Parse(inv.String()) is inv again (FuzzParse checks it).
package invite

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// Version is the invite format this package writes (protocol.md §11, parameter v).
const Version = 1

// Bounds on what Parse accepts (protocol.md §11).
const (
	MaxLen     = 2048 // bytes of the whole invite
	MaxAddrs   = 8    // peer addresses
	maxParams  = 32   // parameters, unknown ones included
	maxAddrLen = 256  // bytes of one multiaddr
	maxName    = 64   // bytes of the suggested petname
	maxNetwork = 64   // bytes of the network name
	maxPeerID  = 128  // characters of the peer id
)

// Prefix starts every invite: the URI scheme tanglemail (RFC 3986 §3.1) and the path "invite".
const Prefix = "tanglemail:invite?"

// Errors of Parse; each is wrapped with the details.
var (
	ErrNotInvite = errors.New("not a tanglemail invite (it starts with " + Prefix + ")")
	ErrVersion   = errors.New("invite made by a newer tanglemail: upgrade to join with it")
	ErrInvalid   = errors.New("invalid invite")
)

// Errors of joining by an invite (the node's Join).
var (
	ErrWrongNetwork = errors.New("the invite is for another network")
	ErrOwnInvite    = errors.New("this is your own invite: give it to someone else, and join with theirs")
	ErrUnreachable  = errors.New("none of the invite's peer addresses answered")
)

// Invite is a parsed invite.
type Invite struct {
	Network string           // the network's name (protocol.md §1), e.g. "tanglemail"
	Address identity.Address // whose invite it is
	PeerID  string           // the libp2p peer id of their node
	Addrs   []string         // multiaddrs of their node, without /p2p/<peer id>, best first
	Name    string           // the petname they suggest for themselves; may be empty
}

// PeerAddrs are the invite's addresses with /p2p/<peer id>, as p2p dials them.
func (inv *Invite) PeerAddrs() []string {
	out := make([]string, len(inv.Addrs))
	for i, a := range inv.Addrs {
		out[i] = a + "/p2p/" + inv.PeerID
	}
	return out
}

// String formats the invite canonically (protocol.md §11): parameters in the order v, net, to, peer,
// addr…, name, with only the characters outside [A-Za-z0-9-._~/:@] percent-encoded.
func (inv *Invite) String() string {
	var b strings.Builder
	b.WriteString(Prefix)
	b.WriteString("v=" + strconv.Itoa(Version))
	b.WriteString("&net=" + escape(inv.Network))
	b.WriteString("&to=" + escape(inv.Address.Mail()))
	b.WriteString("&peer=" + escape(inv.PeerID))
	for _, a := range inv.Addrs {
		b.WriteString("&addr=" + escape(a))
	}
	if inv.Name != "" {
		b.WriteString("&name=" + escape(inv.Name))
	}
	return b.String()
}

// Reveals says, in one paragraph for the person about to share the invite, what it gives away.
func (inv *Invite) Reveals() string {
	var hosts []string
	for _, a := range inv.Addrs {
		if h := host(a); h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return fmt.Sprintf("This invite reveals your address and your node's network addresses (%s) with its peer id. "+
		"Anyone who sees it can connect to your node and learn that your address is reached at those network "+
		"addresses, which may tell roughly where you are. Share it only with people you want to reach you, "+
		"over a channel you trust.", strings.Join(hosts, ", "))
}

// Parse reads an invite. Surrounding white space is ignored; everything else must follow protocol.md §11.
func Parse(s string) (*Invite, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(s), MaxLen)
	}
	if len(s) < len(Prefix) || !strings.EqualFold(s[:len("tanglemail:")], "tanglemail:") || s[len("tanglemail:"):len(Prefix)] != "invite?" {
		return nil, ErrNotInvite
	}
	query := s[len(Prefix):]
	if i := strings.IndexByte(query, '#'); i >= 0 {
		query = query[:i] // a fragment (RFC 3986 §3.5) is not part of the invite
	}
	inv := &Invite{}
	var version, to string
	seen := map[string]bool{}
	params := strings.Split(query, "&")
	if len(params) > maxParams {
		return nil, fmt.Errorf("%w: %d parameters, at most %d", ErrInvalid, len(params), maxParams)
	}
	for _, p := range params {
		if p == "" {
			continue
		}
		key, raw, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("%w: parameter %q has no value", ErrInvalid, truncate(p))
		}
		val, err := unescape(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %s: %v", ErrInvalid, truncate(key), err)
		}
		if key != "addr" {
			if seen[key] {
				return nil, fmt.Errorf("%w: parameter %s given twice", ErrInvalid, truncate(key))
			}
			seen[key] = true
		}
		switch key {
		case "v":
			version = val
		case "net":
			if err := checkNetwork(val); err != nil {
				return nil, err
			}
			inv.Network = val
		case "to":
			to = val
		case "peer":
			if err := checkPeerID(val); err != nil {
				return nil, err
			}
			inv.PeerID = val
		case "addr":
			if len(inv.Addrs) == MaxAddrs {
				return nil, fmt.Errorf("%w: more than %d peer addresses", ErrInvalid, MaxAddrs)
			}
			if err := checkAddr(val); err != nil {
				return nil, err
			}
			if !slices.Contains(inv.Addrs, val) {
				inv.Addrs = append(inv.Addrs, val)
			}
		case "name":
			if err := checkName(val); err != nil {
				return nil, err
			}
			inv.Name = val
		default:
			// An unknown parameter is ignored: version 1 may gain optional parameters.
		}
	}
	switch {
	case version == "":
		return nil, fmt.Errorf("%w: parameter v (the invite's version) is missing", ErrInvalid)
	case version != strconv.Itoa(Version):
		if n, err := strconv.Atoi(version); err == nil && n > Version {
			return nil, fmt.Errorf("%w (version %d; this one reads version %d)", ErrVersion, n, Version)
		}
		return nil, fmt.Errorf("%w: version %q", ErrInvalid, truncate(version))
	case inv.Network == "":
		return nil, fmt.Errorf("%w: parameter net (the network's name) is missing", ErrInvalid)
	case to == "":
		return nil, fmt.Errorf("%w: parameter to (the address) is missing", ErrInvalid)
	case inv.PeerID == "":
		return nil, fmt.Errorf("%w: parameter peer (the node's peer id) is missing", ErrInvalid)
	case len(inv.Addrs) == 0:
		return nil, fmt.Errorf("%w: it carries no peer address (addr)", ErrInvalid)
	}
	addr, err := identity.ParseAddress(to)
	if err != nil {
		return nil, fmt.Errorf("%w: parameter to: %v", ErrInvalid, strings.TrimPrefix(err.Error(), "identity: "))
	}
	inv.Address = addr
	return inv, nil
}

func checkNetwork(v string) error {
	if v == "" || len(v) > maxNetwork {
		return fmt.Errorf("%w: network name of %d bytes", ErrInvalid, len(v))
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("%w: network name %q", ErrInvalid, truncate(v))
		}
	}
	return nil
}

// checkPeerID accepts a base58btc peer id (libp2p's spec, peer-ids.md: "Qm…", "12D3KooW…"), which is what
// tanglemail nodes, with Ed25519 keys, have.
func checkPeerID(v string) error {
	if len(v) < 32 || len(v) > maxPeerID {
		return fmt.Errorf("%w: peer id of %d characters", ErrInvalid, len(v))
	}
	for _, c := range v {
		if !strings.ContainsRune(base58, c) {
			return fmt.Errorf("%w: peer id %q is not base58", ErrInvalid, truncate(v))
		}
	}
	return nil
}

const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// checkAddr accepts the textual form of a multiaddr whose first component is an IP address or a DNS
// name, without a /p2p component (the peer id is its own parameter).
func checkAddr(v string) error {
	if len(v) == 0 || len(v) > maxAddrLen {
		return fmt.Errorf("%w: peer address of %d bytes", ErrInvalid, len(v))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: peer address %q has a space or a non-ASCII character", ErrInvalid, truncate(v))
		}
	}
	parts := strings.Split(v, "/")
	if parts[0] != "" || len(parts) < 5 {
		return fmt.Errorf("%w: peer address %q is not a multiaddr like /ip4/192.0.2.1/tcp/4580", ErrInvalid, truncate(v))
	}
	switch parts[1] {
	case "ip4", "ip6":
		ip, err := netip.ParseAddr(parts[2])
		if err != nil || (parts[1] == "ip4") != ip.Is4() {
			return fmt.Errorf("%w: peer address %q: bad IP address", ErrInvalid, truncate(v))
		}
	case "dns", "dns4", "dns6":
		if parts[2] == "" {
			return fmt.Errorf("%w: peer address %q: empty DNS name", ErrInvalid, truncate(v))
		}
	default:
		return fmt.Errorf("%w: peer address %q does not start with /ip4, /ip6, /dns, /dns4 or /dns6", ErrInvalid, truncate(v))
	}
	for _, p := range parts[3:] {
		if p == "p2p" || p == "ipfs" {
			return fmt.Errorf("%w: peer address %q has a /p2p part (the peer id is the parameter peer)", ErrInvalid, truncate(v))
		}
		if p == "" {
			return fmt.Errorf("%w: peer address %q has an empty part", ErrInvalid, truncate(v))
		}
	}
	return nil
}

func checkName(v string) error {
	if v == "" || len(v) > maxName || !utf8.ValidString(v) || strings.ContainsRune(v, '@') || strings.TrimSpace(v) != v {
		return fmt.Errorf("%w: suggested name must be 1 to %d bytes of text without @ or surrounding spaces", ErrInvalid, maxName)
	}
	for _, c := range v {
		if unicode.IsControl(c) {
			return fmt.Errorf("%w: suggested name has a control character", ErrInvalid)
		}
	}
	return nil
}

// escape percent-encodes (RFC 3986 §2.1) every byte outside the unreserved characters and / : @, which
// are allowed in a query (RFC 3986 §3.4) and keep multiaddrs and addresses readable.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~/:@", c) >= 0 {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// unescape decodes percent-encoding; '+' is a plus sign, not a space (RFC 3986 has no such rule).
func unescape(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", errors.New("bad percent-encoding")
		}
		v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// truncate shortens s for an error message.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// host is the IP address or DNS name of a multiaddr ("/ip4/192.0.2.1/tcp/4580" → "192.0.2.1").
func host(addr string) string {
	parts := strings.SplitN(addr, "/", 4)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// Reachability classes of an address, best first.
const (
	classPublic = iota
	classDNS
	classPrivate
	classLoopback
	classUseless
)

func class(addr string) int {
	parts := strings.SplitN(addr, "/", 4)
	if len(parts) < 3 {
		return classUseless
	}
	if strings.HasPrefix(parts[1], "dns") {
		return classDNS
	}
	ip, err := netip.ParseAddr(parts[2])
	switch {
	case err != nil, ip.IsUnspecified(), ip.IsLinkLocalUnicast(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return classUseless
	case ip.IsLoopback():
		return classLoopback
	case ip.IsPrivate():
		return classPrivate
	default:
		return classPublic
	}
}

// ChooseAddrs picks the addresses to put in an invite from a node's addresses (multiaddrs, with or
// without /p2p/<id>): public ones first, then DNS names, then private (LAN) ones; loopback ones only if
// there is nothing else (a node on one machine, as in the tests); never unspecified, link-local or
// multicast ones. At most MaxAddrs, without duplicates, stable within a class.
func ChooseAddrs(addrs []string) []string {
	var cands []string
	for _, a := range addrs {
		if i := strings.Index(a, "/p2p/"); i >= 0 {
			a = a[:i]
		}
		if checkAddr(a) != nil || class(a) == classUseless || slices.Contains(cands, a) {
			continue
		}
		cands = append(cands, a)
	}
	slices.SortStableFunc(cands, func(a, b string) int { return class(a) - class(b) })
	if len(cands) > 0 && class(cands[0]) != classLoopback {
		cands = slices.DeleteFunc(cands, func(a string) bool { return class(a) == classLoopback })
	}
	if len(cands) > MaxAddrs {
		cands = cands[:MaxAddrs]
	}
	return cands
}
