package node

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/invite"
	"github.com/tanglemail/tanglemail/internal/store"
)

// TestJoinByInvite: two fresh nodes (loopback, mDNS and DHT off, no bootstrap peers) know nothing of
// each other; bob joins by alice's invite alone, through the HTTP API, and then mail and chat flow
// both ways.
func TestJoinByInvite(t *testing.T) {
	ctx := context.Background()
	start := func() *Node {
		cfg := testConfig(t, t.TempDir())
		if len(cfg.Bootstrap) != 0 || cfg.MDNS || cfg.DHT {
			t.Fatalf("not a fresh, isolated node: %+v", cfg)
		}
		n := startNode(t, cfg)
		return n
	}
	alice, bob := start(), start()
	if alice.Network().PeerCount() != 0 || bob.Network().PeerCount() != 0 {
		t.Fatal("fresh nodes have peers")
	}
	aAPI, bAPI := apiOf(t, alice), apiOf(t, bob)
	aliceAddr, bobAddr := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()

	var inv api.Invite
	aAPI.call("GET", "/api/invite?name=alice", nil, &inv, http.StatusOK)
	if !strings.HasPrefix(inv.Invite, invite.Prefix) || inv.Address != aliceAddr || len(inv.Addrs) == 0 ||
		!strings.Contains(inv.Reveals, "127.0.0.1") || !strings.Contains(inv.Reveals, "network addresses") {
		t.Fatalf("invite %+v", inv)
	}
	aAPI.call("GET", "/api/invite?name=a@b", nil, nil, http.StatusBadRequest)

	// Mistakes are refused with 4xx before anything is dialled.
	bAPI.call("POST", "/api/join", api.Join{Invite: "hello"}, nil, http.StatusBadRequest)
	bAPI.call("POST", "/api/join", api.Join{Invite: strings.Replace(inv.Invite, "net=tanglemail-dev", "net=tanglemail", 1)}, nil, http.StatusBadRequest)
	var own api.Invite
	bAPI.call("GET", "/api/invite", nil, &own, http.StatusOK)
	bAPI.call("POST", "/api/join", api.Join{Invite: own.Invite}, nil, http.StatusBadRequest)
	bAPI.call("POST", "/api/join", api.Join{Invite: inv.Invite, Petname: aliceAddr}, nil, http.StatusBadRequest)
	// An invite whose node is gone: 502, and no contact.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	parsed, err := invite.Parse(inv.Invite)
	if err != nil {
		t.Fatal(err)
	}
	gone := *parsed
	gone.Addrs = []string{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(port)}
	bAPI.call("POST", "/api/join", api.Join{Invite: gone.String()}, nil, http.StatusBadGateway)
	if cs, _ := bob.Mailboxes().Contacts(ctx); len(cs) != 0 {
		t.Fatalf("contacts after failed joins: %+v", cs)
	}

	var joined api.Joined
	bAPI.call("POST", "/api/join", api.Join{Invite: inv.Invite}, &joined, http.StatusOK)
	if len(joined.Connected) == 0 || !joined.ContactAdded || joined.Contact != (api.Contact{Petname: "alice", Address: aliceAddr}) {
		t.Fatalf("joined %+v", joined)
	}
	waitFor(t, "alice and bob peered", 15*time.Second, func() bool {
		return alice.Network().PeerCount() == 1 && bob.Network().PeerCount() == 1
	})
	// Joining again keeps the contact; a petname already taken by someone else is a conflict.
	bAPI.call("POST", "/api/join", api.Join{Invite: inv.Invite}, &joined, http.StatusOK)
	if joined.ContactAdded || joined.Contact.Petname != "alice" {
		t.Fatalf("second join %+v", joined)
	}
	if err := bob.Mailboxes().AddContact(ctx, "carol", "tm1yqak5faue6m2gttz5w5dq2n0p4ek2vs4wuw7ysax8tqy3gvtt8dzjv2wx6m@tangle"); err != nil {
		t.Fatal(err)
	}
	if err := bob.Mailboxes().RemoveContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	bAPI.call("POST", "/api/join", api.Join{Invite: inv.Invite, Petname: "carol"}, nil, http.StatusConflict)
	bAPI.call("POST", "/api/join", api.Join{Invite: inv.Invite}, &joined, http.StatusOK)
	if !joined.ContactAdded || joined.Contact.Petname != "alice" {
		t.Fatalf("join after removing the contact %+v", joined)
	}

	// Mail: bob writes to alice by the address the invite carried.
	raw := "From: <" + bobAddr + ">\r\nTo: <" + aliceAddr + ">\r\nSubject: joined\r\nMessage-ID: <joined@tangle>\r\n" +
		"Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n\r\nHello Alice, I joined by your invite.\r\n"
	submit(t, bob, []string{aliceAddr}, raw)
	waitFor(t, "bob's mail in alice's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, alice, store.RoleInbox)) == 1
	})

	// Chat: bob to "alice", the contact the invite added; alice answers.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	aEv, bEv := aAPI.events(cctx), bAPI.events(cctx)
	var conv conversation
	bAPI.call("POST", "/api/conversations", map[string]string{"peer": "alice"}, &conv, http.StatusOK)
	bAPI.call("POST", "/api/conversations/"+conv.ID+"/messages", map[string]string{"text": "hi alice"}, nil, http.StatusAccepted)
	waitChat(t, aEv, "chat", 60*time.Second, func(e chatEvent) bool {
		return e.Conversation == conv.ID && e.Message.Text == "hi alice" && !e.Message.Mine
	})
	aAPI.call("POST", "/api/conversations/"+conv.ID+"/messages", map[string]string{"text": "welcome bob"}, nil, http.StatusAccepted)
	waitChat(t, bEv, "chat", 60*time.Second, func(e chatEvent) bool {
		return e.Conversation == conv.ID && e.Message.Text == "welcome bob" && !e.Message.Mine
	})
}
