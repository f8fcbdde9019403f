package p2p

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// offence records misbehaviour by p and bans it once its score reaches the threshold.
func (n *Node) offence(p peer.ID, reason string, weight float64) {
	if score := n.misbehave.add(p, weight, time.Now()); score >= n.lim.BanThreshold {
		n.banPeer(p, reason, score)
	}
}

// banPeer disconnects p and refuses it for Limits.BanDuration, in the connection gater and in GossipSub.
func (n *Node) banPeer(p peer.ID, reason string, score float64) {
	if n.gater.isBanned(p) {
		return
	}
	n.gater.ban(p, time.Now().Add(n.lim.BanDuration))
	n.ctr.peersBanned.Add(1)
	n.log.Warn("p2p: banning misbehaving peer", "peer", p.String(), "reason", reason,
		"score", score, "for", n.lim.BanDuration)
	n.spawn(func() {
		n.ps.BlacklistPeer(p)
		_ = n.host.Network().ClosePeer(p)
	})
}

// notifiee turns connection events into peer state and catch-up.
type notifiee struct{ n *Node }

func (nf *notifiee) Listen(network.Network, ma.Multiaddr)      {}
func (nf *notifiee) ListenClose(network.Network, ma.Multiaddr) {}
func (nf *notifiee) Connected(_ network.Network, c network.Conn) {
	outbound := c.Stat().Direction == network.DirOutbound
	if outbound {
		nf.n.addPeerAddrs(c.RemotePeer(), true, c.RemoteMultiaddr())
	}
	nf.n.peerConnected(c.RemotePeer(), outbound)
}
func (nf *notifiee) Disconnected(nw network.Network, c network.Conn) {
	p := c.RemotePeer()
	if nw.Connectedness(p) == network.Connected {
		return // another connection remains
	}
	nf.n.peerDisconnected(p)
}

func (n *Node) peerConnected(p peer.ID, outbound bool) {
	n.mu.Lock()
	if _, ok := n.peers[p]; ok {
		n.mu.Unlock()
		return
	}
	n.peers[p] = &peerState{since: time.Now(), outbound: outbound}
	n.peersDirty = true
	n.mu.Unlock()
	n.redial.connected(p)
	n.catchup.schedule(p, kindConnect, nil)
	// Once the topic mesh has formed (a few heartbeats), compare the recent window: blocks gossiped
	// between the connect-time listing and the mesh are repaired here.
	time.AfterFunc(n.lim.AntiEntropyDelay, func() {
		if n.isConnected(p) {
			n.catchup.schedule(p, kindAntiEntropy, nil)
		}
	})
}

func (n *Node) peerDisconnected(p peer.ID) {
	n.mu.Lock()
	if _, ok := n.peers[p]; ok {
		delete(n.peers, p)
		n.peerTable[p] = n.now().UnixMilli()
		n.peersDirty = true
		n.trimPeerTableLocked()
	}
	n.mu.Unlock()
	n.tracer.removePeer(p)
	n.bw.lastRecv.Delete(p)
	n.catchup.forget(p)
}

// connectedPeers lists connected, unbanned peers.
func (n *Node) connectedPeers() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]peer.ID, 0, len(n.peers))
	for p := range n.peers {
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.DeleteFunc(out, n.gater.isBanned)
}

// caughtUpPeers lists connected peers with a completed catch-up session.
func (n *Node) caughtUpPeers() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []peer.ID
	for p, ps := range n.peers {
		if ps.caughtUp {
			out = append(out, p)
		}
	}
	return out
}

// PeerCount is the number of peers connected now: cheaper than Status for callers that only need to
// know whether publishing can reach anyone (the outbox). Light clients (ClientHost, which speak no
// block protocol) are not counted.
func (n *Node) PeerCount() int {
	c := 0
	for _, p := range n.host.Network().Peers() {
		if n.gossipPeer(p) {
			c++
		}
	}
	return c
}
