package p2p

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// maxPeerTable bounds the peer table (and so the peers file): the least recently seen go first.
const maxPeerTable = 1024

func (n *Node) trimPeerTableLocked() {
	if len(n.peerTable) <= maxPeerTable {
		return
	}
	type kv struct {
		p peer.ID
		t int64
	}
	all := make([]kv, 0, len(n.peerTable))
	for p, t := range n.peerTable {
		all = append(all, kv{p, t})
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.t - a.t) })
	for _, e := range all[maxPeerTable:] {
		delete(n.peerTable, e.p)
		delete(n.peerAddrs, e.p)
	}
}

// peersFileJSON is the JSON layout of PeersFile: peer id → last contact, Unix ms, and peer id → the
// multiaddrs to re-dial it at (without /p2p). The key "contacts" is the file format's, kept for
// compatibility; in the code this is the peer table, not the address book.
type peersFileJSON struct {
	Network  string              `json:"network"`
	LastSeen map[string]int64    `json:"contacts"`
	Addrs    map[string][]string `json:"addrs,omitempty"`
}

func (n *Node) loadPeersFile() {
	if n.s.DataDir == "" {
		return
	}
	data, err := os.ReadFile(filepath.Join(n.s.DataDir, PeersFile))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			n.log.Warn("p2p: read peers file", "err", err)
		}
		return
	}
	var cf peersFileJSON
	if err := json.Unmarshal(data, &cf); err != nil || cf.Network != n.params.Name {
		n.log.Warn("p2p: ignoring peers file", "err", err)
		return
	}
	for id, t := range cf.LastSeen {
		p, err := peer.Decode(id)
		if err != nil {
			continue
		}
		n.peerTable[p] = t
		for _, s := range cf.Addrs[id] {
			if a, err := ma.NewMultiaddr(s); err == nil && dialable(a) && len(n.peerAddrs[p]) < maxPeerAddrs {
				n.peerAddrs[p] = append(n.peerAddrs[p], a)
			}
		}
	}
	n.trimPeerTableLocked()
}

func (n *Node) savePeersFile() error {
	if n.s.DataDir == "" {
		return nil
	}
	n.mu.Lock()
	cf := peersFileJSON{Network: n.params.Name, LastSeen: make(map[string]int64, len(n.peerTable)),
		Addrs: make(map[string][]string, len(n.peerAddrs))}
	now := n.now().UnixMilli()
	for p := range n.peers {
		n.peerTable[p] = now
	}
	for p, t := range n.peerTable {
		cf.LastSeen[p.String()] = t
		for _, a := range n.peerAddrs[p] {
			cf.Addrs[p.String()] = append(cf.Addrs[p.String()], a.String())
		}
	}
	n.peersDirty = false
	n.mu.Unlock()
	data, err := json.Marshal(&cf)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(n.s.DataDir, PeersFile), data, 0o600)
}
