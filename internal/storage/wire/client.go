package wire

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// StreamOpener opens service streams: *p2p.Node and *p2p.ClientHost.
type StreamOpener interface {
	OpenStream(ctx context.Context, p peer.ID, proto string) (p2p.Stream, error)
}

var (
	_ StreamOpener = (*p2p.Node)(nil)
	_ StreamOpener = (*p2p.ClientHost)(nil)
)

// Protocol is the storage stream protocol id of network netID (protocol.md §12).
func Protocol(netID tangle.NetworkID) string { return p2p.ProtocolPrefix(netID) + "/storage/1" }

// ErrSessionClosed: the session's stream broke or was closed; Dial again (and Auth) to continue.
var ErrSessionClosed = errors.New("storage: session closed (dial again)")

// Session is a client's storage session with one provider: one stream for requests (one at a time),
// plus one stream per Watch. Methods are safe for concurrent use; requests are serialised.
type Session struct {
	h        StreamOpener
	provider peer.ID
	proto    string

	mu     sync.Mutex
	s      p2p.Stream // nil once broken or closed
	id     SubID
	key    ed25519.PrivateKey
	authed bool
	watch  []p2p.Stream
}

// Dial opens a storage session to provider.
func Dial(ctx context.Context, h StreamOpener, provider peer.ID, netID tangle.NetworkID) (*Session, error) {
	proto := Protocol(netID)
	s, err := h.OpenStream(ctx, provider, proto)
	if err != nil {
		return nil, err
	}
	return &Session{h: h, provider: provider, proto: proto, s: s}, nil
}

// Provider is the provider's peer id.
func (s *Session) Provider() peer.ID { return s.provider }

// roundTrip sends req and reads one response on st. An error frame comes back as *Error; any other
// failure breaks the stream.
func roundTrip(ctx context.Context, st p2p.Stream, req Msg) (Msg, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	} else {
		_ = st.SetDeadline(timeZero)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	if err := WriteMsg(st, req); err != nil {
		return nil, err
	}
	m, err := ReadMsg(st)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if e, ok := m.(MsgError); ok {
		err := e.E
		return nil, &err
	}
	return m, nil
}

// call runs one request on the session stream; it breaks the session on a transport failure.
func (s *Session) call(ctx context.Context, req Msg) (Msg, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callLocked(ctx, req)
}

func (s *Session) callLocked(ctx context.Context, req Msg) (Msg, error) {
	if s.s == nil {
		return nil, ErrSessionClosed
	}
	m, err := roundTrip(ctx, s.s, req)
	var werr *Error
	if err != nil && !errors.As(err, &werr) {
		_ = s.s.Reset()
		s.s = nil
		s.authed = false
		return nil, fmt.Errorf("storage: %s: %w", s.provider, err)
	}
	return m, err
}

func unexpected(m Msg) error {
	return fmt.Errorf("%w: unexpected response type 0x%02x", ErrMalformed, m.Type())
}

// Create asks for a subscription. It is Pending unless the request's Grant (or the provider's
// allowlist of keys) activates it at once.
func (s *Session) Create(ctx context.Context, req CreateRequest) (SubID, SubState, error) {
	req.Prefix = req.Prefix.Canonical()
	m, err := s.call(ctx, MsgCreate{Req: req})
	if err != nil {
		return SubID{}, 0, err
	}
	c, ok := m.(MsgCreated)
	if !ok {
		return SubID{}, 0, unexpected(m)
	}
	return c.ID, c.State, nil
}

// authLocked runs the challenge on st: the provider's nonce, signed with key over AuthMessage.
func authStream(ctx context.Context, st p2p.Stream, provider peer.ID, id SubID, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("storage: auth: bad subscription key")
	}
	m, err := roundTrip(ctx, st, MsgChallenge{ID: id})
	if err != nil {
		return err
	}
	n, ok := m.(MsgNonce)
	if !ok {
		return unexpected(m)
	}
	var a MsgAuth
	copy(a.Sig[:], ed25519.Sign(key, AuthMessage(provider, id, n.Nonce)))
	m, err = roundTrip(ctx, st, a)
	if err != nil {
		return err
	}
	if _, ok := m.(MsgOK); !ok {
		return unexpected(m)
	}
	return nil
}

// Auth proves the session holds subscription id's key (protocol.md §12.2). Fetch, Release, Watch and
// Status need it.
func (s *Session) Auth(ctx context.Context, id SubID, key ed25519.PrivateKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return ErrSessionClosed
	}
	err := authStream(ctx, s.s, s.provider, id, key)
	var werr *Error
	if err != nil && !errors.As(err, &werr) {
		_ = s.s.Reset()
		s.s = nil
		return fmt.Errorf("storage: %s: %w", s.provider, err)
	}
	if err != nil {
		return err
	}
	s.id, s.key, s.authed = id, key, true
	return nil
}

func clampU32(v int) uint32 {
	if v <= 0 {
		return 0
	}
	if v > int(^uint32(0)>>1) {
		return ^uint32(0) >> 1
	}
	return uint32(v)
}

// Fetch returns stored blocks strictly after cursor after, at most maxCount blocks and about maxBytes
// bytes (at least one block when any is stored), the cursor to continue from, and whether more are
// stored.
func (s *Session) Fetch(ctx context.Context, after Cursor, maxCount, maxBytes int) ([]Pushed, Cursor, bool, error) {
	m, err := s.call(ctx, MsgFetch{After: after, MaxCount: clampU32(maxCount), MaxBytes: clampU32(maxBytes)})
	if err != nil {
		return nil, after, false, err
	}
	b, ok := m.(MsgBlocks)
	if !ok {
		return nil, after, false, unexpected(m)
	}
	return b.Blocks, b.Next, b.More, nil
}

// Release deletes every stored block with a cursor ≤ upTo; the ack means the deletion is committed.
func (s *Session) Release(ctx context.Context, upTo Cursor) error {
	m, err := s.call(ctx, MsgRelease{UpTo: upTo})
	if err != nil {
		return err
	}
	if _, ok := m.(MsgOK); !ok {
		return unexpected(m)
	}
	return nil
}

// Watch opens a separate, authenticated stream on which the provider pushes blocks as it stores them
// for this subscription. The channel closes when ctx ends, the session closes or the stream breaks.
// Push is lossy: after any reconnect, Fetch from the last cursor.
func (s *Session) Watch(ctx context.Context) (<-chan Pushed, error) {
	s.mu.Lock()
	id, key, authed := s.id, s.key, s.authed
	s.mu.Unlock()
	if !authed {
		return nil, &Error{Code: CodeUnauthorized, Msg: "Auth before Watch"}
	}
	st, err := s.h.OpenStream(ctx, s.provider, s.proto)
	if err != nil {
		return nil, err
	}
	if err := authStream(ctx, st, s.provider, id, key); err != nil {
		_ = st.Reset()
		return nil, err
	}
	m, err := roundTrip(ctx, st, MsgWatch{})
	if err != nil {
		_ = st.Reset()
		return nil, err
	}
	if _, ok := m.(MsgOK); !ok {
		_ = st.Reset()
		return nil, unexpected(m)
	}
	_ = st.SetDeadline(timeZero)
	s.mu.Lock()
	if s.s == nil {
		s.mu.Unlock()
		_ = st.Reset()
		return nil, ErrSessionClosed
	}
	s.watch = append(s.watch, st)
	s.mu.Unlock()
	ch := make(chan Pushed, 64)
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	go func() {
		defer close(ch)
		defer stop()
		defer st.Close()
		for {
			m, err := ReadMsg(st)
			if err != nil {
				return
			}
			p, ok := m.(MsgPush)
			if !ok {
				return
			}
			select {
			case ch <- p.P:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// Publish hands a finished block (sealed, PoW ground) to a public node, which validates its proof of
// work first, rate-limits per client and gossips it. A refusal is an *Error (BadPoW, BadBlock,
// RateLimited, Refused).
func (s *Session) Publish(ctx context.Context, raw []byte) error {
	m, err := s.call(ctx, MsgPublish{Raw: raw})
	if err != nil {
		return err
	}
	if _, ok := m.(MsgOK); !ok {
		return unexpected(m)
	}
	return nil
}

// Tips returns up to n parents (1..MaxTips) for a block of shard the client builds.
func (s *Session) Tips(ctx context.Context, shard uint32, n int) ([]tangle.ID, error) {
	if n < 1 || n > MaxTips {
		return nil, fmt.Errorf("storage: tips: n = %d, want 1..%d", n, MaxTips)
	}
	m, err := s.call(ctx, MsgTips{Shard: shard, N: uint16(n)})
	if err != nil {
		return nil, err
	}
	t, ok := m.(MsgTipsResp)
	if !ok {
		return nil, unexpected(m)
	}
	return t.IDs, nil
}

// Status returns the authenticated subscription's state, usage and expiry.
func (s *Session) Status(ctx context.Context) (Status, error) {
	m, err := s.call(ctx, MsgStatus{})
	if err != nil {
		return Status{}, err
	}
	st, ok := m.(MsgStatusResp)
	if !ok {
		return Status{}, unexpected(m)
	}
	return st.S, nil
}

// Close closes the session's streams (watch channels close too).
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.watch {
		_ = w.Reset()
	}
	s.watch = nil
	if s.s == nil {
		return nil
	}
	err := s.s.Close()
	s.s = nil
	return err
}

var timeZero time.Time
