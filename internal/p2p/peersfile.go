package p2p

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// maxContacts bounds the persisted contact table.
const maxContacts = 1024

func (n *Node) trimContactsLocked() {
	if len(n.contacts) <= maxContacts {
		return
	}
	type kv struct {
		p peer.ID
		t int64
	}
	all := make([]kv, 0, len(n.contacts))
	for p, t := range n.contacts {
		all = append(all, kv{p, t})
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.t - a.t) })
	for _, e := range all[maxContacts:] {
		delete(n.contacts, e.p)
	}
}

// contactsFile is the JSON layout of PeersFile: peer id → last contact, Unix ms.
type contactsFile struct {
	Network  string           `json:"network"`
	Contacts map[string]int64 `json:"contacts"`
}

func (n *Node) loadContacts() {
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
	var cf contactsFile
	if err := json.Unmarshal(data, &cf); err != nil || cf.Network != n.params.Name {
		n.log.Warn("p2p: ignoring peers file", "err", err)
		return
	}
	for id, t := range cf.Contacts {
		if p, err := peer.Decode(id); err == nil {
			n.contacts[p] = t
		}
	}
	n.trimContactsLocked()
}

func (n *Node) saveContacts() error {
	if n.s.DataDir == "" {
		return nil
	}
	n.mu.Lock()
	cf := contactsFile{Network: n.params.Name, Contacts: make(map[string]int64, len(n.contacts))}
	now := n.now().UnixMilli()
	for p := range n.peers {
		n.contacts[p] = now
	}
	for p, t := range n.contacts {
		cf.Contacts[p.String()] = t
	}
	n.mu.Unlock()
	data, err := json.Marshal(&cf)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(n.s.DataDir, PeersFile), data, 0o600)
}
