package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/invite"
	"github.com/tanglemail/tanglemail/internal/store"
)

// joinDialTimeout bounds the dial of one peer address of an invite.
const joinDialTimeout = 10 * time.Second

// NoPeersHint is what a node with no peers tells its user (at start, in status, in the web client).
const NoPeersHint = "no peers: ask a friend for an invite (tanglemail invite, on their node) and run " +
	"`tanglemail join <invite>`, or give peers with --bootstrap"

// Invite returns this node's invite (protocol.md §11) with the addresses peers can reach it at; name,
// if not empty, is the petname it suggests for this user. It implements web.Invites.
func (n *Node) Invite(name string) (api.Invite, error) {
	if n.net == nil {
		return api.Invite{}, fmt.Errorf("%w: a light client has no peer address to invite to; give your address (%s) instead", invite.ErrInvalid, n.id.Address().Mail())
	}
	addrs := invite.ChooseAddrs(n.net.Addrs())
	if len(addrs) == 0 {
		return api.Invite{}, fmt.Errorf("%w: the node listens on no address other nodes can dial; give it one with --p2p-listen", invite.ErrInvalid)
	}
	inv := &invite.Invite{Network: n.cfg.Network.Name, Address: n.id.Address(), PeerID: n.net.ID(), Addrs: addrs, Name: name}
	text := inv.String()
	if _, err := invite.Parse(text); err != nil { // a bad suggested name
		return api.Invite{}, err
	}
	return api.Invite{Invite: text, Address: inv.Address.Mail(), PeerID: inv.PeerID, Addrs: addrs, Reveals: inv.Reveals()}, nil
}

// Join follows an invite: it checks that it is for this node's network, dials every peer address in it
// through the p2p layer's ordinary connect path (so the peer is remembered and re-dialled like any
// other, and the DHT and catch-up start with it), and, once at least one connected, adds the inviter as
// a contact under petname (empty: the name the invite suggests, else one made from the address). If
// the address is already a contact, that contact is kept. It implements web.Invites.
//
// Errors: invite.ErrNotInvite, ErrInvalid, ErrVersion, ErrWrongNetwork, ErrOwnInvite (bad input);
// invite.ErrUnreachable (no address answered); store.ErrContactExists (the petname names someone else),
// store.ErrInvalidContact (a bad petname). A contact error comes after the peers connected: they stay.
func (n *Node) Join(ctx context.Context, text, petname string) (api.Joined, error) {
	inv, err := invite.Parse(text)
	if err != nil {
		return api.Joined{}, err
	}
	if inv.Network != n.cfg.Network.Name {
		return api.Joined{}, fmt.Errorf("%w: it is for %q, this node is on %q", invite.ErrWrongNetwork, inv.Network, n.cfg.Network.Name)
	}
	if n.net == nil {
		return api.Joined{}, fmt.Errorf("%w: a light client joins no peers; it reaches the network through its storage providers", invite.ErrUnreachable)
	}
	if inv.Address.Equal(n.id.Address()) || inv.PeerID == n.net.ID() {
		return api.Joined{}, invite.ErrOwnInvite
	}
	res := api.Joined{Network: inv.Network, Connected: []string{}, Failed: []api.JoinFailure{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range inv.PeerAddrs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, joinDialTimeout)
			defer cancel()
			err := n.net.Connect(dctx, a)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed = append(res.Failed, api.JoinFailure{Addr: a, Error: err.Error()})
			} else {
				res.Connected = append(res.Connected, a)
			}
		}()
	}
	wg.Wait()
	if len(res.Connected) == 0 {
		var why []string
		for _, f := range res.Failed {
			why = append(why, f.Error)
		}
		return res, fmt.Errorf("%w (%s): is the inviting node running, and reachable from this network?",
			invite.ErrUnreachable, strings.Join(why, "; "))
	}
	n.log.Info("joined the network by an invite", "connected", len(res.Connected), "failed", len(res.Failed))

	mail := inv.Address.Mail()
	existing, err := n.mail.ContactsByAddress(ctx, mail)
	if err != nil {
		return res, fmt.Errorf("connected, but reading the contacts failed: %w", err)
	}
	if len(existing) > 0 && (petname == "" || strings.EqualFold(existing[0].Petname, petname)) {
		res.Contact = api.Contact{Petname: existing[0].Petname, Address: existing[0].Address}
		return res, nil
	}
	if petname == "" {
		petname = inv.Name
	}
	if petname == "" {
		petname = "friend-" + strings.TrimPrefix(inv.Address.String(), "tm1")[:8]
	}
	if err := n.mail.AddContact(ctx, petname, mail); err != nil {
		if errors.Is(err, store.ErrContactExists) {
			return res, fmt.Errorf("connected, but %w: the petname %q names another contact; add this one with `tanglemail contacts add <petname> %s`",
				store.ErrContactExists, petname, mail)
		}
		return res, fmt.Errorf("connected, but adding the contact failed: %w", err)
	}
	res.Contact, res.ContactAdded = api.Contact{Petname: petname, Address: mail}, true
	return res, nil
}
