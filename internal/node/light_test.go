package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tanglemail/tanglemail/internal/light"
	"github.com/tanglemail/tanglemail/internal/storage"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// storageNode is a full node that is also a storage and public node (--storage --public).
type storageNode struct {
	*Node
	p *storage.Provider
}

// startStorageNode starts a full node on params that stores blocks for subscribers and serves light
// clients (publish, watch, tips).
func startStorageNode(t *testing.T, params tangle.Params) *storageNode {
	t.Helper()
	cfg := DevnetConfig(t.TempDir())
	cfg.Network = params
	cfg.Storage = StorageConfig{Enabled: true, Public: true}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return &storageNode{Node: n, p: n.Storage()}
}

// peerConfig is the configuration of a full node of network params that bootstraps from s.
func (s *storageNode) peerConfig(t *testing.T, params tangle.Params) Config {
	cfg := DevnetConfig(t.TempDir())
	cfg.Network = params
	cfg.Bootstrap = []string{s.addr()}
	return cfg
}

func (s *storageNode) addr() string {
	return s.Network().Addrs()[0]
}

func (s *storageNode) grant(t *testing.T) string {
	t.Helper()
	g, err := s.p.Grant(context.Background(), 64, 30)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// lightConfig is a light client's configuration for provider s.
func lightConfig(t *testing.T, dir string, s *storageNode, grant string) Config {
	cfg := DevnetConfig(dir)
	cfg.Network = s.cfg.Network
	cfg.StorageProviders = []string{s.addr()}
	cfg.StorageGrants = []string{grant}
	cfg.StorageStatusInterval = time.Hour // live traffic must be pushed, not found by polling
	return cfg
}

func startLight(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := StartLight(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	select {
	case <-n.LightClients()[0].Synced():
	case <-time.After(60 * time.Second):
		t.Fatalf("the light client did not sync with its provider: %+v", n.LightClients()[0].Status())
	}
	return n
}

// imapSubjects logs in to n over IMAP and returns the subjects (and flags) of a mailbox's messages.
func imapSubjects(t *testing.T, n *Node, mailbox string) ([]string, [][]imap.Flag) {
	t.Helper()
	c, err := imapclient.DialInsecure(n.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(n.Identity().Address().Mail(), n.Password()).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var set imap.SeqSet
	set.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(set, &imap.FetchOptions{Envelope: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var subj []string
	var flags [][]imap.Flag
	for _, m := range msgs {
		subj = append(subj, m.Envelope.Subject)
		flags = append(flags, m.Flags)
	}
	return subj, flags
}

func mailboxCount(t *testing.T, n *Node, role store.Role) int {
	t.Helper()
	mb, err := n.Mailboxes().MailboxByRole(context.Background(), role)
	if err != nil {
		t.Fatal(err)
	}
	return int(mb.Messages)
}

// TestLightAfterTTL is issue 9's first must-show: bob's device is off for longer than the TTL (the
// short test network: 60 s); alice sends 50 mails and 20 chat messages; bob comes back as a light client
// through a storage node: every one arrives exactly once, in his IMAP INBOX and Chats, and alice's Sent
// copies get $Delivered.
func TestLightAfterTTL(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a 60 s TTL")
	}
	const mails, chats = 50, 20
	params := tangle.ShortNet
	s := startStorageNode(t, params)
	acfg := s.peerConfig(t, params)
	alice := startNode(t, acfg)
	waitFor(t, "alice and the storage node to peer", 30*time.Second, func() bool { return alice.Network().PeerCount() == 1 })

	// Bob subscribes once, then his device is off.
	bobDir := t.TempDir()
	bcfg := lightConfig(t, bobDir, s, s.grant(t))
	bob := startLight(t, bcfg)
	bobAddr := bob.Identity().Address().Mail()
	if st := bob.Status(); st.Mode != "light" || len(st.Storage) != 1 || st.Storage[0].State != "active" {
		t.Fatalf("bob's status: mode %q, storage %+v", st.Mode, st.Storage)
	}
	bob.Close()

	convID := sendPastTTL(t, alice, bobAddr, "stored", mails, chats, "chat %02d while bob was away")
	ctx := context.Background()
	if st := alice.outbox.Stats(); st.Failed != 0 {
		t.Fatalf("alice's outbox failed %d messages at the TTL; want them delayed: %+v", st.Failed, st)
	}
	t.Logf("alice's outbox %+v; the storage node keeps %+v", alice.outbox.Stats(), s.p.Stats())

	// Bob comes back as a light client.
	bob = startLight(t, bcfg)
	waitFor(t, "bob's INBOX and Chats", 2*time.Minute, func() bool {
		return mailboxCount(t, bob, store.RoleInbox) >= mails && mailboxCount(t, bob, store.RoleChats) >= chats
	})
	defer func() {
		if t.Failed() {
			t.Logf("bob: light %+v\noutbox %+v\ninbox %+v\nalice: outbox %+v\ninbox %+v", bob.LightClients()[0].Status(),
				bob.outbox.Stats(), bob.inbox.Stats(), alice.outbox.Stats(), alice.inbox.Stats())
		}
	}()
	waitDelivered(t, alice, mails)
	subjects, _ := imapSubjects(t, bob, "INBOX")
	slices.Sort(subjects)
	if len(subjects) != mails || len(slices.Compact(slices.Clone(subjects))) != mails {
		t.Fatalf("bob's INBOX over IMAP: %d messages, %d distinct; want %d once each: %q", len(subjects),
			len(slices.Compact(slices.Clone(subjects))), mails, subjects)
	}
	for i, s := range subjects {
		if want := fmt.Sprintf("stored mail %02d", i); s != want {
			t.Fatalf("INBOX subject %d: %q, want %q", i, s, want)
		}
	}
	chatSubjects, _ := imapSubjects(t, bob, "Chats")
	if len(chatSubjects) != chats {
		t.Fatalf("bob's Chats over IMAP: %d messages, want %d", len(chatSubjects), chats)
	}
	msgs, err := bob.Chat().History(ctx, convID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range msgs {
		texts = append(texts, m.Text)
	}
	slices.Sort(texts)
	for i := range chats {
		if i >= len(texts) || texts[i] != fmt.Sprintf("chat %02d while bob was away", i) {
			t.Fatalf("bob's chat texts: %q", texts)
		}
	}
	st := bob.LightClients()[0].Stats()
	t.Logf("bob's light client: %+v; inbox %+v", st, bob.inbox.Stats())
}

// tlog is a logger that writes to the test's log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) { w.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

func testLogger(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name)
}

// TestLightSendsAndReceivesLive: a connected light client gets chat pushed by its public node (its
// polling interval is an hour, so only the push can bring it), answers through the public node, and
// both sides get their delivery receipts.
func TestLightSendsAndReceivesLive(t *testing.T) {
	params := tangle.ShortNet
	s := startStorageNode(t, params)
	acfg := s.peerConfig(t, params)
	acfg.Log = testLogger(t, "alice")
	alice := startNode(t, acfg)
	waitFor(t, "alice and the storage node to peer", 30*time.Second, func() bool { return alice.Network().PeerCount() == 1 })
	bcfg := lightConfig(t, t.TempDir(), s, s.grant(t))
	bcfg.Log = testLogger(t, "bob")
	bob := startLight(t, bcfg)
	if s.Network().PeerCount() != 1 {
		t.Fatalf("the storage node counts %d gossip peers, want 1 (alice; a light client is not one)", s.Network().PeerCount())
	}
	ctx := context.Background()
	bobAddr, aliceAddr := bob.Identity().Address().Mail(), alice.Identity().Address().Mail()
	aconv, err := alice.Chat().Direct(ctx, bobAddr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := alice.Chat().Send(ctx, aconv.ID, "hello light bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob to get alice's chat", 60*time.Second, func() bool { return mailboxCount(t, bob, store.RoleChats) == 1 })
	t.Logf("alice → light bob: %v", time.Since(start))
	if st := bob.LightClients()[0].Stats(); st.Pushed == 0 {
		t.Fatalf("the chat was not pushed: %+v", st)
	}
	bconv, err := bob.Chat().Direct(ctx, aliceAddr)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := bob.Chat().Send(ctx, bconv.ID, "hello full alice"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice to get bob's answer", 60*time.Second, func() bool { return mailboxCount(t, alice, store.RoleChats) == 2 })
	t.Logf("light bob → alice: %v", time.Since(start))
	waitFor(t, "both delivery receipts", 60*time.Second, func() bool {
		return alice.outbox.Stats().Delivered == 1 && bob.outbox.Stats().Delivered == 1
	})
	if st := bob.LightClients()[0].Stats(); st.Published == 0 || st.Refused != 0 {
		t.Fatalf("bob's light client: %+v", st)
	}
	// A block without its proof of work is refused by the public node, and the refusal says so.
	h := tangle.Header{Network: params.ID, Time: time.Now().UnixMilli(),
		TTL: params.DefaultChatTTL, Parents: bob.LightClients()[0].SelectParents(0, 2),
		Tag: bob.Identity().Address().MakeTag(nil), PayloadType: tangle.PayloadSealed, Payload: make([]byte, 64)}
	raw, err := h.Encode() // nonce 0: about one in 10^5 would meet the work
	if err != nil {
		t.Fatal(err)
	}
	bad, err := tangle.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	err = bob.LightClients()[0].Publish(ctx, bad)
	re, ok := errors.AsType[*light.RefusedError](err)
	if !ok || re.Provider != s.Network().ID() || !strings.Contains(re.Error(), "proof of work") {
		t.Fatalf("publishing a block without proof of work: %v", err)
	}
	if st := bob.LightClients()[0].Stats(); st.Refused != 1 {
		t.Fatalf("refusals counted: %+v", st)
	}
}

// TestFullNodeFetchesStoredAtStart: a full node with a storage subscription (--storage-provider)
// fetches what its provider kept while it was off when it starts, and files it.
func TestFullNodeFetchesStoredAtStart(t *testing.T) {
	params := tangle.ShortNet
	s := startStorageNode(t, params)
	acfg := s.peerConfig(t, params)
	alice := startNode(t, acfg)
	bcfg := DevnetConfig(t.TempDir())
	bcfg.Network = params
	bcfg.StorageProviders = []string{s.addr()}
	bcfg.StorageGrants = []string{s.grant(t)}
	bob, err := Start(context.Background(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-bob.LightClients()[0].Synced():
	case <-time.After(60 * time.Second):
		t.Fatalf("bob's subscription did not sync: %+v", bob.LightClients()[0].Status())
	}
	if st := bob.Status(); st.Mode != "full" || len(st.Storage) != 1 || st.Storage[0].State != "active" {
		t.Fatalf("bob's status: mode %q, storage %+v", st.Mode, st.Storage)
	}
	bobAddr := bob.Identity().Address().Mail()
	bob.Close()
	waitFor(t, "alice to peer", 30*time.Second, func() bool { return alice.Network().PeerCount() >= 1 })
	submit(t, alice, []string{bobAddr}, "From: <"+alice.Identity().Address().Mail()+">\r\nTo: <"+bobAddr+">\r\n"+
		"Subject: while you were off\r\nMessage-ID: <off@tangle>\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\n\r\nhi\r\n")
	waitFor(t, "the storage node to keep the mail", 60*time.Second, func() bool { return s.p.Stats().StoredBytes > 0 })
	bob, err = Start(context.Background(), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	// Start returns after the stored blocks are filed (fetchStored runs before live blocks).
	if got := mailboxCount(t, bob, store.RoleInbox); got != 1 {
		t.Fatalf("bob's INBOX right after start: %d messages, want 1 (light %+v)", got, bob.LightClients()[0].Status())
	}
	if st := bob.LightClients()[0].Stats(); st.Fetched == 0 {
		t.Fatalf("nothing fetched from the provider: %+v", st)
	}
	waitFor(t, "alice's receipt", 60*time.Second, func() bool { return alice.outbox.Stats().Delivered == 1 })
}

// TestLightQuotaNoticeAfterDowntime: bob's light client has a 1 MiB subscription and is off while alice
// sends him about 0.85 MiB of mail. When he comes back, the subscription's usage before the catch-up
// is what the notice is about: his INBOX gets "80 % full" (the one moment he can learn the provider
// may refuse his mail), beside all the mail, and the usage after the catch-up is low again.
func TestLightQuotaNoticeAfterDowntime(t *testing.T) {
	s := startStorageNode(t, tangle.BenchNet) // no proof of work: 28 blocks of 31 KiB quickly
	g, err := s.p.Grant(context.Background(), 1, 30)
	if err != nil {
		t.Fatal(err)
	}
	cfg := lightConfig(t, t.TempDir(), s, g)
	bob := startLight(t, cfg)
	bobAddr := bob.Identity().Address().Mail()
	bob.Close()
	alice := startNode(t, s.peerConfig(t, tangle.BenchNet))
	waitFor(t, "alice to peer", 30*time.Second, func() bool { return alice.Network().PeerCount() >= 1 })
	const mails = 28 // about 31 KiB stored each: 0.85 MiB of 1 MiB
	filler := strings.Repeat(strings.Repeat("x", 76)+"\r\n", 29_000/78)
	for i := range mails {
		submit(t, alice, []string{bobAddr}, fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: filler %02d\r\n"+
			"Message-ID: <filler-%d@tangle>\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\n\r\n%s",
			alice.Identity().Address().Mail(), bobAddr, i, i, filler))
	}
	var subs []storage.Subscription
	defer func() {
		if t.Failed() {
			t.Logf("subscriptions at the provider: %+v; alice's outbox: %+v", subs, alice.outbox.Stats())
		}
	}()
	waitFor(t, "the storage node to keep 80 % of bob's quota", 120*time.Second, func() bool {
		subs = s.p.Subscriptions()
		return len(subs) == 1 && subs[0].UsedBytes*100 >= 80*subs[0].QuotaBytes
	})
	bob = startLight(t, cfg)
	waitFor(t, "the mail and the notice in bob's INBOX", 120*time.Second, func() bool {
		return mailboxCount(t, bob, store.RoleInbox) >= mails+1
	})
	var notices int
	for _, m := range inboxMessages(t, bob, store.RoleInbox) {
		if bytes.Contains(m, []byte("Subject: Your mail storage is 80 % full")) {
			notices++
		}
	}
	if notices != 1 {
		t.Fatalf("%d quota notices in bob's INBOX, want one", notices)
	}
	waitFor(t, "the usage low again after the catch-up", 30*time.Second, func() bool {
		st := bob.Status()
		return len(st.Storage) == 1 && st.Storage[0].QuotaPercent < 80
	})
}
