package p2p

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

func parseAddrs(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, a := range addrs {
		ai, err := parseAddr(a)
		if err != nil {
			return nil, err
		}
		out = append(out, *ai)
	}
	return out, nil
}

func parseAddr(a string) (*peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(a)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadAddr, a, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, fmt.Errorf("%w %q (want .../p2p/<peer id>): %v", ErrBadAddr, a, err)
	}
	return ai, nil
}

// startHost builds the libp2p host: TCP and QUIC, Noise, yamux, our gater and bandwidth reporter, relaying
// and NAT traversal as relay.go describes (circuit relay client; relay service and AutoNAT services on a
// public node; AutoNAT, AutoRelay with the static relays and hole punching elsewhere), no NAT port
// mapping, and no metrics registration in a global registry.
func (n *Node) startHost(key ed25519.PrivateKey) error {
	pk, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		return fmt.Errorf("p2p: key: %w", err)
	}
	cm, err := connmgr.NewConnManager(64, 128, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return err
	}
	ropts, err := relayOptions(n.s)
	if err != nil {
		return err
	}
	opts := append([]libp2p.Option{
		libp2p.Identity(pk),
		libp2p.ListenAddrStrings(n.s.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableMetrics(),
		libp2p.BandwidthReporter(n.bw),
		libp2p.ConnectionGater(n.gater),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("tanglemail"),
		libp2p.AddrsFactory(n.relayAddrsFactory),
	}, ropts...)
	h, err := libp2p.New(opts...)
	if err != nil {
		return fmt.Errorf("p2p: host: %w", err)
	}
	n.host = h
	if err := n.startRelayService(); err != nil {
		h.Close()
		return err
	}
	if err := n.watchReachability(); err != nil {
		n.closeRelay()
		h.Close()
		return err
	}
	if relays, _ := parseAddrs(n.s.Relays); len(relays) > 0 && !n.s.RelayService {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.reserveLoop(relays)
		}()
	}
	return nil
}

// Connect dials a peer given as a multiaddr with /p2p/<peer id>.
func (n *Node) Connect(ctx context.Context, addr string) error {
	ai, err := parseAddr(addr)
	if err != nil {
		return err
	}
	if n.gater.isBanned(ai.ID) {
		return ErrPeerBlocked
	}
	if err := n.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
	}
	return nil
}

// BlockPeer disconnects a peer and refuses connections to and from it for d (an operator's block, and
// how tests partition a network). UnblockPeer lifts it.
func (n *Node) BlockPeer(id string, d time.Duration) error {
	p, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddr, err)
	}
	n.gater.ban(p, time.Now().Add(d))
	return n.host.Network().ClosePeer(p)
}

// UnblockPeer lifts a block set by BlockPeer or by misbehaviour. It does not dial at once; a known peer
// is re-dialled within Limits.RedialBackoffMax (redial.go).
func (n *Node) UnblockPeer(id string) error {
	p, err := peer.Decode(id)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAddr, err)
	}
	n.gater.unban(p)
	return nil
}

func decodePeer(s string) (peer.ID, error) { return peer.Decode(s) }
