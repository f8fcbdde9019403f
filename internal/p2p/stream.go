package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/tanglemail/tanglemail/internal/tangle"
)

// Service streams (design of the service layer; protocol.md §12 storage, §13 blobs): a service package
// (storage, blob) registers a handler for "<ProtocolPrefix>/<service>/<version>" on a Node, and a
// client opens streams to it from a Node or from a ClientHost. The p2p package only carries the
// streams; framing, authentication and limits belong to the service.

// ProtocolPrefix is the prefix of every tanglemail stream protocol of network netID:
// "/tanglemail/<NID hex>". Service protocols are "<prefix>/storage/1", "<prefix>/blob/1".
func ProtocolPrefix(netID tangle.NetworkID) string { return "/tanglemail/" + netID.String() }

// Stream is one bidirectional service stream. Close closes both directions; CloseWrite half-closes;
// Reset aborts. RemoteAddr is the multiaddr of the underlying connection (what a provider learns of
// a client's network address).
type Stream interface {
	io.ReadWriteCloser
	CloseWrite() error
	Reset() error
	SetDeadline(time.Time) error
	RemotePeer() peer.ID
	RemoteAddr() string
	LocalPeer() peer.ID
}

type stream struct{ network.Stream }

func (s stream) RemotePeer() peer.ID { return s.Conn().RemotePeer() }
func (s stream) RemoteAddr() string  { return s.Conn().RemoteMultiaddr().String() }
func (s stream) LocalPeer() peer.ID  { return s.Conn().LocalPeer() }

// HandleStream registers h for inbound streams of protocol proto (a full protocol id, see
// ProtocolPrefix). h owns the stream and must close or reset it. Streams from banned peers never
// reach h (the gater refuses their connections).
func (n *Node) HandleStream(proto string, h func(s Stream)) {
	n.host.SetStreamHandler(protocol.ID(proto), func(s network.Stream) {
		defer func() {
			if r := recover(); r != nil {
				n.log.Error("p2p: service stream handler panicked", "protocol", proto, "panic", fmt.Sprint(r))
				_ = s.Reset()
			}
		}()
		h(stream{s})
	})
}

// OpenStream opens a stream of protocol proto to peer p, dialling it if it is not connected and its
// address is known.
func (n *Node) OpenStream(ctx context.Context, p peer.ID, proto string) (Stream, error) {
	return openStream(ctx, n.host, p, proto)
}

func openStream(ctx context.Context, h host.Host, p peer.ID, proto string) (Stream, error) {
	s, err := h.NewStream(ctx, p, protocol.ID(proto))
	if err != nil {
		return nil, fmt.Errorf("p2p: open %s stream to %s: %w", proto, p, err)
	}
	return stream{s}, nil
}

// Host is the node's libp2p host, for services that need more than HandleStream/OpenStream (the
// relay service). libp2p types stay out of every other API of this package.
func (n *Node) Host() host.Host { return n.host }

// clientAgent is the identify agent of a ClientHost: a light client, never a gossip peer.
const clientAgent = "tanglemail-light"

// gossipPeer reports whether p may be a gossip peer: anything but an identified light client
// (ClientHost). Before identify completes a peer counts, as before.
func (n *Node) gossipPeer(p peer.ID) bool {
	av, err := n.host.Peerstore().Get(p, "AgentVersion")
	if err != nil {
		return true
	}
	s, _ := av.(string)
	return s != clientAgent
}

// forgetClient removes an identified light client from the peer tables: it is not caught up with,
// not re-dialled and not remembered in the peers file.
func (n *Node) forgetClient(p peer.ID) {
	n.mu.Lock()
	delete(n.peers, p)
	delete(n.peerTable, p)
	delete(n.peerAddrs, p)
	n.peersDirty = true
	n.mu.Unlock()
	n.catchup.forget(p)
}

// ClientHost is a minimal libp2p host for a light client: it keeps no Tangle, joins no gossip, and
// only opens service streams to the providers it is told about. Every ClientHost has a fresh random
// peer id, so a client using one ClientHost per provider never shows one peer id to two providers.
// A full node also makes one for each private blob fetch through a relay (WithClientRelay), so the
// holder never meets the node's own peer id.
type ClientHost struct {
	h host.Host
}

// ClientOption configures NewClientHost.
type ClientOption func(*clientSettings)

type clientSettings struct {
	listen []string
	relay  bool
}

// WithClientRelay lets the client host dial relayed addresses (<relay>/p2p/<id>/p2p-circuit): the
// circuit relay v2 client transport, without hole punching, so a peer reached through a relay never
// learns where the client is (a recipient's private blob fetch, protocol.md §13.5).
func WithClientRelay() ClientOption {
	return func(s *clientSettings) { s.relay = true }
}

// WithClientListen makes the client host listen on addrs (loopback multiaddrs in tests); by default it
// listens nowhere and only dials.
func WithClientListen(addrs ...string) ClientOption {
	return func(s *clientSettings) { s.listen = append(s.listen, addrs...) }
}

// NewClientHost starts a client host with a fresh random peer id: TCP and QUIC, Noise, yamux; no relay
// service, no hole punching, no NAT mapping, no metrics in a global registry.
func NewClientHost(ctx context.Context, opts ...ClientOption) (*ClientHost, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s clientSettings
	for _, o := range opts {
		o(&s)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	pk, err := crypto.UnmarshalEd25519PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	lopts := []libp2p.Option{
		libp2p.Identity(pk),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ForceReachabilityPrivate(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent(clientAgent),
	}
	if s.relay {
		lopts = append(lopts, libp2p.EnableRelay())
	} else {
		lopts = append(lopts, libp2p.DisableRelay())
	}
	if len(s.listen) > 0 {
		lopts = append(lopts, libp2p.ListenAddrStrings(s.listen...))
	} else {
		lopts = append(lopts, libp2p.NoListenAddrs)
	}
	h, err := libp2p.New(lopts...)
	if err != nil {
		return nil, fmt.Errorf("p2p: client host: %w", err)
	}
	return &ClientHost{h: h}, nil
}

// ID is the client host's (fresh) peer id.
func (c *ClientHost) ID() peer.ID { return c.h.ID() }

// Connect dials ai (re-dials when the link dropped). ConnectAddr takes a multiaddr with /p2p/<id>.
func (c *ClientHost) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if err := c.h.Connect(ctx, ai); err != nil {
		return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
	}
	return nil
}

// ConnectAddr dials a provider given as a multiaddr with /p2p/<peer id> and returns its peer id.
func (c *ClientHost) ConnectAddr(ctx context.Context, addr string) (peer.ID, error) {
	ai, err := parseAddr(addr)
	if err != nil {
		return "", err
	}
	return ai.ID, c.Connect(ctx, *ai)
}

// OpenStream opens a stream of protocol proto to p (dialling a known address if not connected).
func (c *ClientHost) OpenStream(ctx context.Context, p peer.ID, proto string) (Stream, error) {
	return openStream(ctx, c.h, p, proto)
}

// Host is the underlying libp2p host (relay/hole-punching setup by the light client).
func (c *ClientHost) Host() host.Host { return c.h }

// Close stops the host and closes its connections.
func (c *ClientHost) Close() error {
	if c == nil || c.h == nil {
		return errors.New("p2p: nil client host")
	}
	return c.h.Close()
}

// HandleStream registers h for inbound streams of protocol proto on the client host (a client host
// that listens can serve, as a provider does in tests and tools). h owns the stream.
func (c *ClientHost) HandleStream(proto string, h func(s Stream)) {
	c.h.SetStreamHandler(protocol.ID(proto), func(s network.Stream) { h(stream{s}) })
}

// Addrs lists the client host's listen multiaddrs with /p2p/<id> (empty unless WithClientListen).
func (c *ClientHost) Addrs() []string {
	var out []string
	for _, a := range c.h.Addrs() {
		out = append(out, a.String()+"/p2p/"+c.h.ID().String())
	}
	return out
}
