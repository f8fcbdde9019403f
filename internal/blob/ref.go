package blob

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tanglemail/tanglemail/internal/wirebuf"
)

// Bounds of a Ref's encoding (§13.2).
const (
	refVersion       = 1
	MaxHolders       = 8
	MaxHolderAddrs   = 4
	maxPeerIDLen     = 64
	maxAddrLen       = 256
	holderFlagSender = 0x01
)

// Holder is a node that serves a blob: its peer id, the addresses to reach it, and whether it is the
// sender's own node (which a recipient who does not know the sender never dials directly, §13.5).
type Holder struct {
	Peer   peer.ID
	Addrs  []ma.Multiaddr
	Sender bool
}

// Ref is what a sealed mail carries for a blob: id, plaintext size, key and holders. It is secret (it
// holds the key) and travels only inside sealed envelopes.
type Ref struct {
	ID      ID
	Size    uint64
	Key     Key
	Holders []Holder
}

// Encode is the Ref's binary form (§13.2):
//
//	version (1) = 1 ‖ id (32) ‖ LE64 size ‖ key (32) ‖ holder count (1)
//	holder: flags (1) ‖ peer id length (1) ‖ peer id ‖ address count (1) ‖ (LE16 length ‖ multiaddr)*
func (r Ref) Encode() ([]byte, error) {
	if r.Size > MaxSize {
		return nil, ErrTooLarge
	}
	if len(r.Holders) > MaxHolders {
		return nil, fmt.Errorf("blob: %d holders, at most %d", len(r.Holders), MaxHolders)
	}
	out := make([]byte, 0, 74+len(r.Holders)*64)
	out = append(out, refVersion)
	out = append(out, r.ID[:]...)
	out = binary.LittleEndian.AppendUint64(out, r.Size)
	out = append(out, r.Key[:]...)
	out = append(out, byte(len(r.Holders)))
	for _, h := range r.Holders {
		pid := []byte(h.Peer)
		if len(pid) == 0 || len(pid) > maxPeerIDLen {
			return nil, errors.New("blob: holder peer id length out of bounds")
		}
		if len(h.Addrs) > MaxHolderAddrs {
			return nil, fmt.Errorf("blob: %d addresses, at most %d", len(h.Addrs), MaxHolderAddrs)
		}
		var flags byte
		if h.Sender {
			flags |= holderFlagSender
		}
		out = append(out, flags, byte(len(pid)))
		out = append(out, pid...)
		out = append(out, byte(len(h.Addrs)))
		for _, a := range h.Addrs {
			b := a.Bytes()
			if len(b) == 0 || len(b) > maxAddrLen {
				return nil, errors.New("blob: holder address length out of bounds")
			}
			out = binary.LittleEndian.AppendUint16(out, uint16(len(b)))
			out = append(out, b...)
		}
	}
	return out, nil
}

// DecodeRef parses a Ref, rejecting every bound violation and trailing bytes with an error.
func DecodeRef(b []byte) (Ref, error) {
	d := wirebuf.NewReader(b, errShort)
	if v := d.U8(); v != refVersion {
		return Ref{}, fmt.Errorf("blob: ref version %d", v)
	}
	var r Ref
	copy(r.ID[:], d.Take(32))
	r.Size = d.U64()
	copy(r.Key[:], d.Take(32))
	if d.Err() != nil {
		return Ref{}, d.Err()
	}
	if r.Size > MaxSize {
		return Ref{}, ErrTooLarge
	}
	n := int(d.U8())
	if n > MaxHolders {
		return Ref{}, fmt.Errorf("blob: %d holders, at most %d", n, MaxHolders)
	}
	for range n {
		flags := d.U8()
		if flags&^holderFlagSender != 0 {
			return Ref{}, fmt.Errorf("blob: unknown holder flags %#x", flags)
		}
		l := int(d.U8())
		if d.Err() == nil && (l == 0 || l > maxPeerIDLen) {
			return Ref{}, errors.New("blob: holder peer id length out of bounds")
		}
		pidb := d.Take(l)
		if d.Err() != nil {
			return Ref{}, d.Err()
		}
		pid, err := peer.IDFromBytes(pidb)
		if err != nil {
			return Ref{}, fmt.Errorf("blob: holder peer id: %w", err)
		}
		h := Holder{Peer: pid, Sender: flags&holderFlagSender != 0}
		na := int(d.U8())
		if na > MaxHolderAddrs {
			return Ref{}, fmt.Errorf("blob: %d addresses, at most %d", na, MaxHolderAddrs)
		}
		for range na {
			al := int(d.U16())
			if d.Err() == nil && (al == 0 || al > maxAddrLen) {
				return Ref{}, errors.New("blob: holder address length out of bounds")
			}
			ab := d.Take(al)
			if d.Err() != nil {
				return Ref{}, d.Err()
			}
			a, err := ma.NewMultiaddrBytes(ab)
			if err != nil {
				return Ref{}, fmt.Errorf("blob: holder address: %w", err)
			}
			h.Addrs = append(h.Addrs, a)
		}
		r.Holders = append(r.Holders, h)
	}
	if d.Err() != nil {
		return Ref{}, d.Err()
	}
	if d.Len() != 0 {
		return Ref{}, errors.New("blob: trailing bytes after ref")
	}
	return r, nil
}

var errShort = errors.New("blob: truncated")
