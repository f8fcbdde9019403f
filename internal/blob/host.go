package blob

import (
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ServeHost registers srv for proto on a bare libp2p host (a client host that holds blobs, tests). A
// full node uses (*p2p.Node).HandleStream(proto, func(s p2p.Stream) { srv.Serve(s) }).
func ServeHost(h host.Host, proto string, srv *Server) {
	h.SetStreamHandler(protocol.ID(proto), func(s network.Stream) { srv.Serve(hostStream{s}) })
}

type hostStream struct{ network.Stream }

func (s hostStream) RemotePeer() peer.ID { return s.Conn().RemotePeer() }
