package p2p

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	dutil "github.com/libp2p/go-libp2p/p2p/discovery/util"
)

// startDHT runs a Kademlia DHT server in the private /tanglemail namespace. Its only bootstrap peers are
// the configured ones; it never uses libp2p's default (public IPFS) list.
func (n *Node) startDHT() error {
	kad, err := dht.New(n.host,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix("/tanglemail"),
		dht.BootstrapPeers(n.bootstrap...),
		dht.DisableValues(),
	)
	if err != nil {
		return fmt.Errorf("p2p: dht: %w", err)
	}
	n.kad = kad
	n.disc = drouting.NewRoutingDiscovery(kad)
	if err := kad.Bootstrap(n.ctx); err != nil {
		return fmt.Errorf("p2p: dht bootstrap: %w", err)
	}
	for _, sh := range n.shards {
		dutil.Advertise(n.ctx, n.disc, n.topicName(sh))
	}
	return nil
}

// dialBootstrap connects to every bootstrap peer not yet connected, in parallel.
func (n *Node) dialBootstrap(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ai := range n.bootstrap {
		if ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			if err := n.host.Connect(cctx, ai); err != nil {
				n.log.Debug("p2p: bootstrap dial failed", "peer", ai.ID.String(), "err", err)
			}
		}(ai)
	}
	wg.Wait()
}

// maintain samples bandwidth, re-dials known peers (redial.go), pings connected ones, schedules
// anti-entropy and saves the peer table: soon after it changed, and every minute.
func (n *Node) maintain(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastSave, lastAE, lastPing time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n.bw.sample(now)
			n.redialRound(now)
			ping := now.Sub(lastPing) >= n.lim.PingInterval
			if ping {
				lastPing = now
			}
			n.pingRound(ping)
			if now.Sub(lastAE) >= n.lim.AntiEntropyInterval {
				lastAE = now
				if ps := n.caughtUpPeers(); len(ps) > 0 {
					n.catchup.schedule(ps[mrand.IntN(len(ps))], kindAntiEntropy, nil)
				}
			}
			n.mu.Lock()
			dirty := n.peersDirty
			n.mu.Unlock()
			if (dirty && now.Sub(lastSave) >= 2*time.Second) || now.Sub(lastSave) >= time.Minute {
				lastSave = now
				if err := n.savePeersFile(); err != nil {
					n.log.Warn("p2p: save peers", "err", err)
				}
			}
		}
	}
}

// discoverLoop runs DHT discovery every Limits.ReconnectInterval, apart from maintain: a round may
// take tens of seconds.
func (n *Node) discoverLoop(ctx context.Context) {
	tick := time.NewTicker(n.lim.ReconnectInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.discover(ctx)
		}
	}
}

// targetPeers is how many peers DHT discovery tries to keep.
const targetPeers = 8

func (n *Node) discover(ctx context.Context) {
	if len(n.host.Network().Peers()) >= targetPeers {
		return
	}
	for _, sh := range n.shards {
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		found, err := dutil.FindPeers(fctx, n.disc, n.topicName(sh))
		cancel()
		if err != nil {
			continue
		}
		for _, ai := range found {
			if ai.ID == n.host.ID() || len(ai.Addrs) == 0 || n.host.Network().Connectedness(ai.ID) == network.Connected {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = n.host.Connect(cctx, ai)
			cancel()
			if len(n.host.Network().Peers()) >= targetPeers {
				return
			}
		}
	}
}

// mdnsNotifee dials peers found on the LAN.
type mdnsNotifee struct{ n *Node }

func (m *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	n.spawn(func() {
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		if err := n.host.Connect(ctx, ai); err != nil {
			n.log.Debug("p2p: mdns dial failed", "peer", ai.ID.String(), "err", err)
		}
	})
}
