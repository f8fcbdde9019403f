package chat

import (
	"bytes"
	"slices"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// Change is a membership change as a group's log keeps it: who made it, when, and what.
type Change struct {
	Sent    time.Time // the envelope's sent time (Unix milliseconds)
	Author  identity.Address
	Content *Content // IsChange
}

// less orders changes by (sent time, author key, message id), ascending (protocol.md §10.3).
func less(a, b Change) int {
	if c := a.Sent.UnixMilli() - b.Sent.UnixMilli(); c != 0 {
		if c < 0 {
			return -1
		}
		return 1
	}
	if c := bytes.Compare(a.Author.Key, b.Author.Key); c != 0 {
		return c
	}
	return bytes.Compare(a.Content.Message[:], b.Content.Message[:])
}

// Fold computes a group's state from its changes (protocol.md §10.3), in any order: it sorts them and
// applies them from the unknown state. It returns nil while the state is unknown. changes is sorted in
// place.
func Fold(changes []Change) *State {
	slices.SortFunc(changes, less)
	var s *State
	for _, ch := range changes {
		c := ch.Content
		if s == nil {
			if c.Type == TypeCreate || c.Type == TypeAdd {
				s = &State{Name: c.State.Name, Members: slices.Clone(c.State.Members)}
			}
			continue
		}
		if !s.Has(ch.Author) {
			continue
		}
		switch c.Type {
		case TypeAdd:
			if !s.Has(c.Member) && len(s.Members) < MaxMembers {
				s.Members = append(s.Members, c.Member)
			}
		case TypeRemove:
			s.remove(c.Member)
		case TypeLeave:
			s.remove(ch.Author)
		case TypeRename:
			s.Name = c.Name
		}
	}
	return s
}

func (s *State) remove(a identity.Address) {
	if i := s.index(a); i >= 0 {
		s.Members = slices.Delete(s.Members, i, i+1)
	}
}

// EncodeState is the group state's wire form (protocol.md §10.3), which the store keeps.
func EncodeState(s *State) []byte {
	if s == nil {
		return nil
	}
	return appendState(nil, s)
}

// DecodeState parses EncodeState's output; nil for nil.
func DecodeState(b []byte) (*State, error) {
	if b == nil {
		return nil, nil
	}
	s, rest, err := parseState(b)
	if err == nil && len(rest) != 0 {
		err = malformed("bytes after the group state")
	}
	return s, err
}
