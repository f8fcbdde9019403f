package chat

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/blake2b"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/seal"
)

// Type is the type byte of a chat envelope's content (protocol.md §10.3).
type Type byte

// Chat content types (protocol.md §10.3).
const (
	TypeText   Type = 0x01
	TypeTyping Type = 0x02
	TypeRead   Type = 0x03
	TypeCreate Type = 0x10
	TypeAdd    Type = 0x11
	TypeRemove Type = 0x12
	TypeLeave  Type = 0x13
	TypeRename Type = 0x14
)

// Limits of protocol.md §10.3.
const (
	IDSize       = 16   // conversation and message ids
	HeaderSize   = 33   // type, conversation, message id
	MemberSize   = 33   // address version byte and Ed25519 key
	MaxText      = 4000 // bytes of a text
	MaxName      = 100  // bytes of a group name
	MaxMembers   = 100  // members of a group, the creator included
	MaxReadKeys  = 1000 // keys in a read notice
	replayKeyLen = 32
)

// ErrMalformed is wrapped by every error of Parse. It wraps seal.ErrMalformedContent, which is what the
// inbox looks for (it does not import chat).
var ErrMalformed = fmt.Errorf("chat: %w", seal.ErrMalformedContent)

// ID is a conversation or message id.
type ID [IDSize]byte

// IsZero reports whether id is all zero (a 1:1 conversation on the wire).
func (id ID) IsZero() bool { return id == ID{} }

// String is the id in 32 lower-case hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID parses 32 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != IDSize {
		return id, fmt.Errorf("%w: conversation id %q is not 32 hex digits", ErrInvalid, s)
	}
	copy(id[:], b)
	return id, nil
}

// NewID returns a fresh random id.
func NewID() ID {
	var id ID
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return id
}

// DirectID is the id of the 1:1 conversation between the identities with Ed25519 keys a and b
// (protocol.md §10.3): H("tanglemail/v1/direct" ‖ min ‖ max)[0:16].
func DirectID(a, b []byte) ID {
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	h, _ := blake2b.New256(nil)
	h.Write([]byte("tanglemail/v1/direct"))
	h.Write(a)
	h.Write(b)
	var id ID
	copy(id[:], h.Sum(nil))
	return id
}

// GroupConversationID is the conversation id of the group whose id on the wire is gid (protocol.md
// §10.3): H("tanglemail/v1/group" ‖ gid)[0:16]. Hashed under its own label, it can never be a 1:1
// conversation's id, whatever group id a sender chooses.
func GroupConversationID(gid ID) ID {
	h, _ := blake2b.New256(nil)
	h.Write([]byte("tanglemail/v1/group"))
	h.Write(gid[:])
	var id ID
	copy(id[:], h.Sum(nil))
	return id
}

// State is a group's name and members.
type State struct {
	Name    string
	Members []identity.Address // distinct, in the order given
}

// Has reports whether a is a member.
func (s *State) Has(a identity.Address) bool { return s.index(a) >= 0 }

func (s *State) index(a identity.Address) int {
	for i, m := range s.Members {
		if bytes.Equal(m.Key, a.Key) {
			return i
		}
	}
	return -1
}

// Content is a parsed chat envelope content (protocol.md §10.3).
type Content struct {
	Type         Type
	Conversation ID // zero for 1:1
	Message      ID
	Text         string           // TypeText
	Keys         [][32]byte       // TypeRead
	Member       identity.Address // TypeAdd, TypeRemove
	Name         string           // TypeRename
	State        *State           // TypeCreate, TypeAdd (the state after the change)
}

// IsChange reports whether the content is a membership change.
func (c *Content) IsChange() bool { return c.Type >= TypeCreate && c.Type <= TypeRename }

// Filed reports whether a content of this type is filed and receipted (texts and changes).
func (c *Content) Filed() bool { return c.Type == TypeText || c.IsChange() }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Encode returns the wire form of c, checking it as Parse would.
func (c *Content) Encode() ([]byte, error) {
	out := make([]byte, 0, HeaderSize+len(c.Text)+len(c.Name)+2)
	out = append(out, byte(c.Type))
	out = append(out, c.Conversation[:]...)
	out = append(out, c.Message[:]...)
	switch c.Type {
	case TypeText:
		out = append(out, c.Text...)
	case TypeTyping, TypeLeave:
	case TypeRead:
		for _, k := range c.Keys {
			out = append(out, k[:]...)
		}
	case TypeCreate:
		out = appendState(out, c.State)
	case TypeAdd:
		out = appendMember(out, c.Member)
		out = appendState(out, c.State)
	case TypeRemove:
		out = appendMember(out, c.Member)
	case TypeRename:
		out = append(out, byte(len(c.Name)))
		out = append(out, c.Name...)
	}
	if _, err := Parse(out); err != nil {
		return nil, err
	}
	return out, nil
}

func appendMember(out []byte, a identity.Address) []byte {
	out = append(out, a.VersionByte())
	return append(out, a.Key...)
}

func appendState(out []byte, s *State) []byte {
	if s == nil {
		return out
	}
	out = append(out, byte(len(s.Name)))
	out = append(out, s.Name...)
	out = append(out, byte(len(s.Members)))
	for _, m := range s.Members {
		out = appendMember(out, m)
	}
	return out
}

// Parse parses a chat envelope's content and checks every rule of protocol.md §10.3. Errors wrap
// ErrMalformed and say what is wrong.
func Parse(b []byte) (*Content, error) {
	if len(b) < HeaderSize {
		return nil, malformed("%d bytes, shorter than the 33-byte header", len(b))
	}
	c := &Content{Type: Type(b[0])}
	copy(c.Conversation[:], b[1:17])
	copy(c.Message[:], b[17:33])
	body := b[HeaderSize:]
	if c.IsChange() && c.Conversation.IsZero() {
		return nil, malformed("group change 0x%02x without a group id", byte(c.Type))
	}
	switch c.Type {
	case TypeText:
		if len(body) == 0 || len(body) > MaxText {
			return nil, malformed("text of %d bytes, not 1…%d", len(body), MaxText)
		}
		if !utf8.Valid(body) {
			return nil, malformed("text is not UTF-8")
		}
		c.Text = string(body)
	case TypeTyping, TypeLeave:
		if len(body) != 0 {
			return nil, malformed("type 0x%02x with a body", byte(c.Type))
		}
	case TypeRead:
		if len(body) == 0 || len(body)%replayKeyLen != 0 || len(body)/replayKeyLen > MaxReadKeys {
			return nil, malformed("read notice of %d bytes is not 1…%d keys", len(body), MaxReadKeys)
		}
		seen := make(map[[32]byte]bool, len(body)/replayKeyLen)
		for i := 0; i < len(body); i += replayKeyLen {
			k := [32]byte(body[i : i+replayKeyLen])
			if seen[k] {
				return nil, malformed("read notice names a key twice")
			}
			seen[k] = true
			c.Keys = append(c.Keys, k)
		}
	case TypeCreate:
		s, rest, err := parseState(body)
		if err != nil {
			return nil, err
		}
		if len(rest) != 0 {
			return nil, malformed("bytes after the group state")
		}
		c.State = s
	case TypeAdd, TypeRemove:
		m, rest, err := parseMember(body)
		if err != nil {
			return nil, err
		}
		c.Member = m
		if c.Type == TypeRemove {
			if len(rest) != 0 {
				return nil, malformed("bytes after the removed member")
			}
			break
		}
		s, rest, err := parseState(rest)
		if err != nil {
			return nil, err
		}
		if len(rest) != 0 {
			return nil, malformed("bytes after the group state")
		}
		if !s.Has(m) {
			return nil, malformed("add: the state does not contain the added member")
		}
		c.State = s
	case TypeRename:
		name, rest, err := parseName(body)
		if err != nil {
			return nil, err
		}
		if len(rest) != 0 {
			return nil, malformed("bytes after the name")
		}
		c.Name = name
	default:
		return nil, malformed("unknown type 0x%02x", byte(c.Type))
	}
	return c, nil
}

func parseMember(b []byte) (identity.Address, []byte, error) {
	if len(b) < MemberSize {
		return identity.Address{}, nil, malformed("member cut short")
	}
	a, err := identity.ParseBinaryAddress(b[:MemberSize])
	if err != nil {
		return identity.Address{}, nil, malformed("member: %v", err)
	}
	return a, b[MemberSize:], nil
}

func parseName(b []byte) (string, []byte, error) {
	if len(b) < 1 {
		return "", nil, malformed("name length missing")
	}
	n := int(b[0])
	if len(b) < 1+n {
		return "", nil, malformed("name cut short")
	}
	name := string(b[1 : 1+n])
	if err := CheckName(name); err != nil {
		return "", nil, malformed("%v", err)
	}
	return name, b[1+n:], nil
}

// CheckName checks a group name: 1…100 bytes of UTF-8 without control characters.
func CheckName(name string) error {
	if len(name) == 0 || len(name) > MaxName {
		return fmt.Errorf("%w: a group name has 1 to %d bytes", ErrInvalid, MaxName)
	}
	if !utf8.ValidString(name) || hasControl(name) {
		return fmt.Errorf("%w: a group name is UTF-8 text without control characters", ErrInvalid)
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

func parseState(b []byte) (*State, []byte, error) {
	name, rest, err := parseName(b)
	if err != nil {
		return nil, nil, err
	}
	if len(rest) < 1 {
		return nil, nil, malformed("member count missing")
	}
	n := int(rest[0])
	rest = rest[1:]
	if n < 1 || n > MaxMembers {
		return nil, nil, malformed("group of %d members, not 1…%d", n, MaxMembers)
	}
	s := &State{Name: name}
	for range n {
		var m identity.Address
		if m, rest, err = parseMember(rest); err != nil {
			return nil, nil, err
		}
		if s.Has(m) {
			return nil, nil, malformed("a member occurs twice in the group state")
		}
		s.Members = append(s.Members, m)
	}
	return s, rest, nil
}

// CheckAuthor applies the rules of protocol.md §10.3 that need the envelope's verified sender: the state
// a create or add carries must contain its author.
func (c *Content) CheckAuthor(author identity.Address) error {
	if (c.Type == TypeCreate || c.Type == TypeAdd) && !c.State.Has(author) {
		return malformed("the group state does not contain the change's author")
	}
	return nil
}
