package chat_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/chat"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/inbox"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// network is an in-memory tangle: Publish validates a block and hands it to every attached inbox.
type network struct {
	params  tangle.Params
	mu      sync.Mutex
	inboxes []*inbox.Inbox
	last    []tangle.ID
}

func (n *network) PeerCount() int { return 1 }

func (n *network) SelectParents(uint32, int) []tangle.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.last) == 0 {
		return []tangle.ID{tangle.Genesis}
	}
	return []tangle.ID{n.last[len(n.last)-1]}
}

func (n *network) Publish(ctx context.Context, b *tangle.Block) error {
	if _, err := n.params.Validate(b.Raw, b.IssuedAt()); err != nil {
		return fmt.Errorf("test network: %w", err)
	}
	n.mu.Lock()
	n.last = append(n.last, b.ID())
	ins := append([]*inbox.Inbox(nil), n.inboxes...)
	n.mu.Unlock()
	for _, in := range ins {
		in.HandleBlock(b)
	}
	return nil
}

// node is one account with its store, outbox, inbox and chat service.
type node struct {
	name   string
	id     *identity.Identity
	st     *store.Store
	out    *outbox.Outbox
	in     *inbox.Inbox
	chat   *chat.Service
	events <-chan chat.Event
}

func (nd *node) addr() string { return nd.id.Address().Mail() }

func newIdentity(t testing.TB, seed byte) *identity.Identity {
	t.Helper()
	s := make([]byte, 32)
	for i := range s {
		s[i] = seed
	}
	id, err := identity.FromSeed(s, 8)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func startNode(t testing.TB, net *network, name string, seed byte) *node {
	t.Helper()
	nd := &node{name: name, id: newIdentity(t, seed)}
	st, err := store.Open(filepath.Join(t.TempDir(), name+".db"))
	if err != nil {
		t.Fatal(err)
	}
	nd.st = st
	if nd.out, err = outbox.New(outbox.Config{Store: st, Identity: nd.id, Params: net.params, Publisher: net, Tips: net,
		Workers: 1, ReceiptDelay: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if nd.chat, err = chat.New(chat.Config{Store: st, Identity: nd.id, Params: net.params, Notes: nd.out}); err != nil {
		t.Fatal(err)
	}
	if nd.in, err = inbox.New(inbox.Config{Store: st, Identities: []*identity.Identity{nd.id}, Params: net.params,
		Receipts: nd.out, OnReceipt: nd.out, Chat: nd.chat}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.events = nd.chat.Subscribe(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { nd.in.Run(ctx) })
	wg.Go(func() { _ = nd.out.Run(ctx) })
	wg.Go(func() { _ = nd.chat.Run(ctx) })
	net.mu.Lock()
	net.inboxes = append(net.inboxes, nd.in)
	net.mu.Unlock()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		nd.in.Close()
		st.Close()
	})
	return nd
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitEvent reads nd's events until one matches, failing the test after 10 s.
func (nd *node) waitEvent(t testing.TB, what string, match func(chat.Event) bool) chat.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-nd.events:
			if match(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("%s: no %s event within 10 s", nd.name, what)
		}
	}
}

// waitFor polls cond (a store query) until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, 10*time.Second, cond)
}

func mustGroup(t testing.TB, nd *node, id string) chat.Conversation {
	t.Helper()
	c, err := nd.chat.Conversation(testCtx(t), id)
	if err != nil {
		t.Fatalf("%s: %v", nd.name, err)
	}
	return c
}

func memberSet(c chat.Conversation) map[string]bool {
	out := map[string]bool{}
	for _, m := range c.Members {
		out[m.Address] = true
	}
	return out
}
