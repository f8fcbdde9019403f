package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	lpnet "github.com/libp2p/go-libp2p/core/network"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/blob"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// attachMail is a multipart mail of about size bytes: a short text part and an attachment of random
// bytes in base64 (so nothing compresses it), built in one allocation.
func attachMail(from, to, subject string, size int) string {
	return string(attachMailBytes(from, to, subject, size))
}

func attachMailBytes(from, to, subject string, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 1024)
	writeAttachMail(&b, from, to, subject, size)
	return b.Bytes()
}

// writeAttachMail writes attachMailBytes's message to w a line at a time, so that a benchmark's
// client need not hold it; it returns w's first error.
func writeAttachMail(w io.Writer, from, to, subject string, size int) error {
	rnd := rand.New(rand.NewPCG(uint64(size), 7))
	head := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d@attach>\r\nDate: %s\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain\r\n\r\nThe photo.\r\n"+
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"+
		"Content-Disposition: attachment; filename=\"photo.bin\"\r\n\r\n",
		from, to, subject, rnd.Uint64(), time.Now().UTC().Format(time.RFC1123Z))
	if _, err := io.WriteString(w, head); err != nil {
		return err
	}
	lines := size / 78 // 57 random bytes → 76 base64 characters and CRLF
	var src [57]byte
	var line [78]byte
	line[76], line[77] = '\r', '\n'
	for range lines {
		for i := range src {
			src[i] = byte(rnd.Uint32())
		}
		base64.StdEncoding.Encode(line[:76], src[:])
		if _, err := w.Write(line[:]); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "--b1--\r\n")
	return err
}

// attachPair starts alice and bob on params, peered, with alice in bob's contacts.
func attachPair(t testing.TB, params tangle.Params) (alice, bob *Node) {
	nodes := startDevnet(t, params, 2)
	alice, bob = nodes[0], nodes[1]
	if err := bob.Mailboxes().AddContact(context.Background(), "alice", alice.Identity().Address().Mail()); err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

// imapFetchAll logs into n's IMAP server and returns the full bytes of every INBOX message.
func imapFetchAll(t testing.TB, n *Node) [][]byte {
	t.Helper()
	c, err := imapclient.DialInsecure(n.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	loginSelect(t, c, n, "INBOX")
	var all imap.SeqSet
	all.AddRange(1, 0)
	msgs, err := c.Fetch(all, &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		for _, b := range m.BodySection {
			out = append(out, b.Bytes)
		}
	}
	return out
}

func checkAttachment(t *testing.T, alice, bob *Node, size int) {
	from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
	raw := attachMail(from, to, "holiday photos", size)
	want := sha256.Sum256([]byte(raw))
	submit(t, alice, []string{to}, raw)
	waitFor(t, "the attachment in bob's INBOX", 120*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 1
	})
	got := imapFetchAll(t, bob)
	if len(got) != 1 || sha256.Sum256(got[0]) != want {
		t.Fatalf("bob's IMAP client got %d messages, sha256 differs (len %d, want %d)", len(got), len(got[0]), len(raw))
	}
	waitFor(t, "the delivery receipt at alice", 60*time.Second, func() bool {
		items, err := alice.Mailboxes().OutboxItems(context.Background())
		return err == nil && len(items) == 1 && items[0].Rcpts[0].State == store.RcptDelivered
	})
	// Only the small envelope was published: no chunk blocks.
	if st := alice.Status(); st.Outbox.Stats.Published != 1 {
		t.Fatalf("alice published %d blocks, want 1 (the blob mail envelope)", st.Outbox.Stats.Published)
	}
	if bytes.Contains(got[0], []byte("X-Tanglemail-Blob-Pending")) {
		t.Fatal("bob got a notice, not the mail")
	}
}

// A 2 MiB mail from a contact travels as a blob: bob's IMAP client gets it byte for byte.
func TestAttachment2MiB(t *testing.T) {
	alice, bob := attachPair(t, tangle.DevNet)
	checkAttachment(t, alice, bob, 2<<20)
}

// TestAttachment25MiB: the must-show case, once in the suite: a mail at the 25 MiB limit over
// SMTP between two loopback nodes with the main network's parameters (real proof of work, now only for
// the small envelope) reaches bob's IMAP client with the same sha256.
func TestAttachment25MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("25 MiB transfer")
	}
	alice, bob := attachPair(t, tangle.MainNet)
	checkAttachment(t, alice, bob, 25<<20-8<<10)
}

// startAt starts a node on params bootstrapped to the given nodes, closed when the test ends.
func startAt(t *testing.T, params tangle.Params, configure func(*Config), peers ...*Node) *Node {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.Network = params
	for _, p := range peers {
		cfg.Bootstrap = append(cfg.Bootstrap, p.Network().Addrs()...)
	}
	if configure != nil {
		configure(&cfg)
	}
	return startNode(t, cfg)
}

func connected(a, b *Node) bool {
	return a.Network().Host().Network().Connectedness(b.Network().Host().ID()) == lpnet.Connected
}

// TestAttachmentStrangerNeedsConsent: carol, a stranger to bob, sends him 2 MiB (above the 1 MiB
// automatic limit for strangers). Carol and bob share only a hub node. Bob gets a notice (sender,
// subject, size) in INBOX and the mail waits in GET /api/blobs; accepting it does not make bob's node
// dial carol's (he has no relay or provider, so there is no private route), and nothing is fetched.
func TestAttachmentStrangerNeedsConsent(t *testing.T) {
	hub := startAt(t, tangle.DevNet, nil)
	carol := startAt(t, tangle.DevNet, nil, hub)
	bob := startAt(t, tangle.DevNet, nil, hub)
	waitFor(t, "peering through the hub", 30*time.Second, func() bool {
		return carol.Network().PeerCount() >= 1 && bob.Network().PeerCount() >= 1
	})
	to := bob.Identity().Address().Mail()
	submit(t, carol, []string{to}, attachMail(carol.Identity().Address().Mail(), to, "big file from a stranger", 2<<20))
	waitFor(t, "the notice in bob's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 1
	})
	notice := string(inboxMessages(t, bob, store.RoleInbox)[0])
	for _, want := range []string{"X-Tanglemail-Blob-Pending: ", carol.Identity().Address().Mail(), "big file from a stranger", "2.0 MiB"} {
		if !strings.Contains(notice, want) {
			t.Fatalf("notice lacks %q:\n%s", want, notice)
		}
	}
	var pending []api.PendingBlob
	a := apiOf(t, bob)
	a.call("GET", "/api/blobs", nil, &pending, http.StatusOK)
	if len(pending) != 1 || !pending[0].Waiting || pending[0].Contact || pending[0].Subject != "big file from a stranger" || pending[0].Fetched != 0 {
		t.Fatalf("GET /api/blobs: %+v", pending)
	}
	a.call("POST", "/api/blobs/"+strings.Repeat("0", 64)+"/accept", nil, nil, http.StatusNotFound)
	a.call("POST", "/api/blobs/"+pending[0].Key+"/accept", nil, nil, http.StatusOK)
	waitFor(t, "the fetch to give up for want of a private route", 30*time.Second, func() bool {
		a.call("GET", "/api/blobs", nil, &pending, http.StatusOK)
		return len(pending) == 1 && pending[0].Accepted && strings.Contains(pending[0].Error, "no private route")
	})
	if connected(bob, carol) || bob.blobs.metrics.ChunksFetched.Load() != 0 || carol.blobs.metrics.ChunksServed.Load() != 0 {
		t.Fatalf("bob reached carol's node: connected %v, chunks fetched %d, served %d", connected(bob, carol),
			bob.blobs.metrics.ChunksFetched.Load(), carol.blobs.metrics.ChunksServed.Load())
	}
	if n := len(inboxMessages(t, bob, store.RoleInbox)); n != 1 {
		t.Fatalf("bob's INBOX has %d messages, want only the notice", n)
	}
}

// providerPair starts a storage node s, alice subscribed to it (her blobs are uploaded there) and bob,
// both bootstrapped to s, alice in bob's contacts.
func providerPair(t *testing.T) (s *storageNode, alice, bob *Node) {
	t.Helper()
	s = startStorageNode(t, tangle.DevNet)
	alice = startAt(t, tangle.DevNet, func(c *Config) {
		c.Bootstrap = []string{s.addr()}
		c.StorageProviders = []string{s.addr()}
		c.StorageGrants = []string{s.grant(t)}
	})
	select {
	case <-alice.LightClients()[0].Synced():
	case <-time.After(60 * time.Second):
		t.Fatalf("alice's subscription did not sync: %+v", alice.LightClients()[0].Status())
	}
	waitFor(t, "the provider to know alice's node as a subscriber", 30*time.Second, func() bool {
		return s.p.Subscriber(alice.Network().Host().ID())
	})
	bob = startAt(t, tangle.DevNet, func(c *Config) { c.Bootstrap = []string{s.addr()} })
	if err := bob.Mailboxes().AddContact(context.Background(), "alice", alice.Identity().Address().Mail()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "peering", 30*time.Second, func() bool { return bob.Network().PeerCount() >= 1 && alice.Network().PeerCount() >= 1 })
	return s, alice, bob
}

func waitPublished(t *testing.T, n *Node) {
	waitFor(t, "alice's envelope published", 60*time.Second, func() bool {
		items, err := n.Mailboxes().OutboxItems(context.Background())
		return err == nil && len(items) == 1 && items[0].Rcpts[0].State != store.RcptPending && items[0].Rcpts[0].State != store.RcptSealed
	})
}

// TestAttachmentSenderOffline: alice's node uploads the blob to her storage node while sealing and
// stops right after her envelope is published; bob gets the whole message from the storage node.
func TestAttachmentSenderOffline(t *testing.T) {
	s, alice, bob := providerPair(t)
	from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
	raw := attachMail(from, to, "sent and gone", 2<<20)
	submit(t, alice, []string{to}, raw)
	waitPublished(t, alice)
	alice.Close()
	waitFor(t, "the attachment in bob's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 1
	})
	if got := imapFetchAll(t, bob); len(got) != 1 || sha256.Sum256(got[0]) != sha256.Sum256([]byte(raw)) {
		t.Fatal("bob's message differs from what alice submitted")
	}
	if s.blobs.metrics.ChunksServed.Load() == 0 || s.blobs.metrics.PutsStored.Load() != 1 {
		t.Fatalf("storage node: %d chunks served, %d puts", s.blobs.metrics.ChunksServed.Load(), s.blobs.metrics.PutsStored.Load())
	}
}

// TestAttachmentBadChunkFetchedElsewhere: alice's copy of the blob has a corrupted chunk on disk. Bob
// (restarted, so the envelope is filed from his block store at start, after the corruption) refuses
// that chunk, keeps the good chunks he got from alice, and completes from alice's storage node: the
// filed message is byte for byte what alice submitted, filed once.
func TestAttachmentBadChunkFetchedElsewhere(t *testing.T) {
	s, alice, bob := providerPair(t)
	from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
	bob.unregister() // bob stores blocks but does not file them until his restart
	raw := attachMail(from, to, "one bad chunk", 2<<20)
	submit(t, alice, []string{to}, raw)
	waitPublished(t, alice)
	waitFor(t, "the envelope in bob's block store", 30*time.Second, func() bool {
		st, err := bob.Blocks().Stats()
		return err == nil && st.Blocks >= 1
	})
	files, _ := filepath.Glob(filepath.Join(alice.cfg.DataDir, BlobsDir, "*.blob"))
	if len(files) != 1 {
		t.Fatalf("alice's blob files: %v", files)
	}
	f, err := os.OpenFile(files[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	const bad = 20
	if _, err := f.WriteAt([]byte("corrupt"), bad*blob.SealedChunkSize+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	bob.unregister = nil
	bobCfg := bob.cfg
	bob.Close()
	bob = startNode(t, bobCfg)
	waitFor(t, "the attachment in bob's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 1
	})
	if got := imapFetchAll(t, bob); len(got) != 1 || sha256.Sum256(got[0]) != sha256.Sum256([]byte(raw)) {
		t.Fatal("bob's message differs from what alice submitted")
	}
	m := bob.blobs.metrics
	total := uint64(blob.NumChunks(uint64(len(raw))))
	if m.BadChunks.Load() != 1 || alice.blobs.metrics.ChunksServed.Load() < bad || s.blobs.metrics.ChunksServed.Load() >= total {
		t.Fatalf("bad chunks %d; chunks served by alice %d, by the storage node %d of %d",
			m.BadChunks.Load(), alice.blobs.metrics.ChunksServed.Load(), s.blobs.metrics.ChunksServed.Load(), total)
	}
}

// TestAttachmentPendingSurvivesRestart: a blob mail waiting for consent is kept across bob's restart
// (pending/ is durable); once bob adds the sender to his contacts it is fetched and filed exactly once,
// and alice gets her receipt.
func TestAttachmentPendingSurvivesRestart(t *testing.T) {
	nodes := startDevnet(t, tangle.DevNet, 2)
	alice, bob := nodes[0], nodes[1]
	from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
	raw := attachMail(from, to, "after a restart", 2<<20)
	submit(t, alice, []string{to}, raw)
	waitFor(t, "the notice in bob's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 1
	})
	bobCfg := bob.cfg
	bob.Close()
	bob = startNode(t, bobCfg)
	if err := bob.Mailboxes().AddContact(context.Background(), "alice", from); err != nil {
		t.Fatal(err)
	}
	bob.blobs.kick()
	waitFor(t, "the attachment in bob's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 2
	})
	got := inboxMessages(t, bob, store.RoleInbox)
	if sha256.Sum256(got[1]) != sha256.Sum256([]byte(raw)) {
		t.Fatal("bob's message differs from what alice submitted")
	}
	waitFor(t, "the delivery receipt at alice", 60*time.Second, func() bool {
		items, err := alice.Mailboxes().OutboxItems(context.Background())
		return err == nil && len(items) == 1 && items[0].Rcpts[0].State == store.RcptDelivered
	})
	if p, _ := bob.PendingBlobs(context.Background()); len(p) != 0 {
		t.Fatalf("still pending after filing: %+v", p)
	}
}

// TestAttachmentFromLightClient: a light client's large mail is sealed on the device and uploaded to
// its public node (which takes it because the client is its subscriber); bob, a full node, fetches it
// from there (the light client serves nothing) and gets it byte for byte.
func TestAttachmentFromLightClient(t *testing.T) {
	s := startStorageNode(t, tangle.DevNet)
	alice := startLight(t, lightConfig(t, t.TempDir(), s, s.grant(t)))
	bob := startAt(t, tangle.DevNet, func(c *Config) { c.Bootstrap = []string{s.addr()} })
	if err := bob.Mailboxes().AddContact(context.Background(), "alice", alice.Identity().Address().Mail()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the provider to know alice's client as a subscriber", 30*time.Second, func() bool {
		return s.p.Subscriber(alice.light.hosts[0].ID())
	})
	waitFor(t, "bob to peer", 30*time.Second, func() bool { return bob.Network().PeerCount() >= 1 })
	from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
	raw := attachMail(from, to, "from my phone", 2<<20)
	submit(t, alice, []string{to}, raw)
	waitFor(t, "the attachment in bob's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 1
	})
	if got := imapFetchAll(t, bob); len(got) != 1 || sha256.Sum256(got[0]) != sha256.Sum256([]byte(raw)) {
		t.Fatal("bob's message differs from what alice submitted")
	}
	if s.blobs.metrics.PutsStored.Load() != 1 || alice.Status().Outbox.Stats.Published != 1 {
		t.Fatalf("puts stored at the provider %d, blocks alice published %d", s.blobs.metrics.PutsStored.Load(), alice.Status().Outbox.Stats.Published)
	}
}
