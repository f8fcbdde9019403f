package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/inbox"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/testclock"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

func newClock() *testclock.Clock { return testclock.New(time.Now().Truncate(time.Millisecond)) }

// network is an in-memory tangle: Publish validates a block as a receiver would (at the block's own
// issuing time, so test clocks may run ahead) and hands it to every attached inbox, as p2p's OnBlock
// would. Its tip selection returns the last published blocks.
type network struct {
	params tangle.Params

	mu      sync.Mutex
	inboxes []*inbox.Inbox
	blocks  []*tangle.Block
	hold    chan struct{} // when non-nil, Publish waits for it to close (or ctx) before publishing

	peers         atomic.Int32
	failing       atomic.Bool // Publish fails (after delivering, if deliverOnFail)
	deliverOnFail atomic.Bool
	publishing    chan struct{} // signalled when Publish is entered (cap 1)
}

func newNetwork(p tangle.Params) *network {
	n := &network{params: p, publishing: make(chan struct{}, 1)}
	n.peers.Store(3)
	return n
}

func (n *network) attach(in *inbox.Inbox) {
	n.mu.Lock()
	n.inboxes = append(n.inboxes, in)
	n.mu.Unlock()
}

func (n *network) detach(in *inbox.Inbox) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, x := range n.inboxes {
		if x == in {
			n.inboxes = append(n.inboxes[:i], n.inboxes[i+1:]...)
			return
		}
	}
}

func (n *network) PeerCount() int { return int(n.peers.Load()) }

func (n *network) SelectParents(shard uint32, k int) []tangle.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.blocks) == 0 {
		return []tangle.ID{tangle.Genesis}
	}
	var ids []tangle.ID
	for i := len(n.blocks) - 1; i >= 0 && len(ids) < 2; i-- {
		ids = append(ids, n.blocks[i].ID())
	}
	return tangle.SortParents(ids)
}

var errNetDown = errors.New("test network: publish failed")

func (n *network) Publish(ctx context.Context, b *tangle.Block) error {
	select {
	case n.publishing <- struct{}{}:
	default:
	}
	n.mu.Lock()
	hold := n.hold
	n.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if n.failing.Load() && !n.deliverOnFail.Load() {
		return errNetDown
	}
	if _, err := n.params.Validate(b.Raw, b.IssuedAt()); err != nil {
		return fmt.Errorf("test network: invalid block: %w", err)
	}
	n.mu.Lock()
	n.blocks = append(n.blocks, b)
	ins := append([]*inbox.Inbox(nil), n.inboxes...)
	n.mu.Unlock()
	for _, in := range ins {
		in.HandleBlock(b)
	}
	if n.failing.Load() {
		return errNetDown
	}
	return nil
}

func (n *network) published() []*tangle.Block {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*tangle.Block(nil), n.blocks...)
}

// node is one account: identity, store, outbox and inbox, attached to a network.
type node struct {
	t    testing.TB
	name string
	id   *identity.Identity
	path string
	st   *store.Store
	out  *outbox.Outbox
	in   *inbox.Inbox
	net  *network
	clk  *testclock.Clock
	stop context.CancelFunc
	wg   sync.WaitGroup
	oerr atomic.Value
	ocfg outbox.Config
}

type nodeOpt func(*outbox.Config, *inbox.Config)

func newIdentity(t testing.TB, seed byte, tagBits int) *identity.Identity {
	t.Helper()
	s := make([]byte, 32)
	for i := range s {
		s[i] = seed
	}
	id, err := identity.FromSeed(s, tagBits)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// startNode opens the node's store (at dir/name.db) and starts its engines.
func startNode(t testing.TB, net *network, clk *testclock.Clock, name string, id *identity.Identity, dir string, opts ...nodeOpt) *node {
	t.Helper()
	nd := &node{t: t, name: name, id: id, net: net, clk: clk, path: filepath.Join(dir, name+".db")}
	st, err := store.Open(nd.path, store.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	nd.st = st
	ocfg := outbox.Config{
		Store: st, Identity: id, Params: net.params, Publisher: net, Tips: net, Clock: clk.Now,
		Workers: 1, ReceiptDelay: 10 * time.Millisecond,
	}
	icfg := inbox.Config{
		Store: st, Identities: []*identity.Identity{id}, Params: net.params, Clock: clk.Now, Workers: 2,
	}
	for _, o := range opts {
		o(&ocfg, &icfg)
	}
	nd.ocfg = ocfg
	if nd.out, err = outbox.New(ocfg); err != nil {
		t.Fatal(err)
	}
	if icfg.Receipts == nil {
		icfg.Receipts = nd.out
	}
	if icfg.OnReceipt == nil {
		icfg.OnReceipt = nd.out
	}
	if nd.in, err = inbox.New(icfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.stop = cancel
	nd.wg.Go(func() { nd.in.Run(ctx) })
	nd.wg.Go(func() {
		if err := nd.out.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			nd.oerr.Store(err)
		}
	})
	net.attach(nd.in)
	t.Cleanup(nd.close)
	return nd
}

// close stops the engines and closes the store (a crash, as far as the engines are concerned: nothing
// is flushed that the store has not committed).
func (nd *node) close() {
	if nd.stop == nil {
		return
	}
	nd.net.detach(nd.in)
	nd.stop()
	nd.wg.Wait()
	nd.stop = nil
	if err, _ := nd.oerr.Load().(error); err != nil {
		nd.t.Errorf("%s: outbox.Run: %v", nd.name, err)
	}
	nd.in.Close()
	nd.st.Close()
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.For(t, what, d, cond)
}

func (nd *node) submit(t testing.TB, raw []byte, rcpts ...string) store.OutboxID {
	t.Helper()
	sub, err := nd.st.Submit(testCtx(t), store.Submission{OutboxNew: store.OutboxNew{
		From: nd.id.Address().Mail(), Rcpts: rcpts, Raw: raw,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return sub.OutboxID
}

func (nd *node) rcpt(t testing.TB, id store.OutboxID, rcpt string) store.OutboxRcpt {
	t.Helper()
	it, err := nd.st.OutboxItem(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range it.Rcpts {
		if r.Rcpt == rcpt {
			return r
		}
	}
	t.Fatalf("no recipient %s in outbox item %d", rcpt, id)
	return store.OutboxRcpt{}
}

func (nd *node) waitState(t testing.TB, id store.OutboxID, rcpt string, st store.RcptState, d time.Duration) store.OutboxRcpt {
	t.Helper()
	var r store.OutboxRcpt
	waitFor(t, d, fmt.Sprintf("%s: recipient %s of %d %s", nd.name, rcpt, id, st), func() bool {
		r = nd.rcpt(t, id, rcpt)
		return r.State == st
	})
	return r
}

// mailbox returns the raw messages of a role mailbox, in UID order.
func (nd *node) mailbox(t testing.TB, role store.Role) ([][]byte, []store.Message) {
	t.Helper()
	ctx := testCtx(t)
	mb, err := nd.st.MailboxByRole(ctx, role)
	if err != nil {
		t.Fatal(err)
	}
	l, err := nd.st.List(ctx, mb.ID, store.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var raws [][]byte
	var msgs []store.Message
	for _, m := range l.Messages {
		raw, err := nd.st.Raw(ctx, mb.ID, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := nd.st.Message(ctx, mb.ID, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
		msgs = append(msgs, msg)
	}
	return raws, msgs
}

func mailFrom(from, to *identity.Identity, subject, body string) []byte {
	return []byte("From: " + from.Address().Mail() + "\r\nTo: " + to.Address().Mail() + "\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Jan 2026 15:04:05 +0100\r\nMessage-ID: <" + subject + "@tangle>\r\n\r\n" + body)
}
