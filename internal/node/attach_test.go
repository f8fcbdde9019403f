package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/blob"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/testclock"
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

// deliverIntact submits a 2 MiB mail from alice to bob (an empty INBOX) and waits until bob's IMAP
// client gets it byte for byte; it returns the message.
func deliverIntact(t *testing.T, alice, bob *Node, subject string) []byte {
	t.Helper()
	from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
	raw := attachMailBytes(from, to, subject, 2<<20)
	submit(t, alice, []string{to}, string(raw))
	waitFor(t, "the attachment in bob's INBOX", 120*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 1
	})
	if got := imapFetchAll(t, bob); len(got) != 1 || sha256.Sum256(got[0]) != sha256.Sum256(raw) {
		t.Fatal("bob's message differs from what alice submitted")
	}
	return raw
}

// TestAttachmentBrokenTransferResumes: alice's node breaks every blob stream after 7 chunks; bob's
// fetch of a 2 MiB mail resumes after each break from the chunks already on his disk, fetches every
// chunk exactly once, and his IMAP client gets the message byte for byte.
func TestAttachmentBrokenTransferResumes(t *testing.T) {
	alice := startAt(t, tangle.DevNet, func(c *Config) { c.blobResetAfter = 7 })
	bob := startAt(t, tangle.DevNet, nil, alice)
	if err := bob.Mailboxes().AddContact(context.Background(), "alice", alice.Identity().Address().Mail()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "peering", 30*time.Second, func() bool { return bob.Network().PeerCount() >= 1 })
	raw := deliverIntact(t, alice, bob, "over a bad link")
	m := bob.blobs.metrics
	chunks := uint64(blob.NumChunks(uint64(len(raw))))
	if m.ChunksFetched.Load() != chunks || m.Retries.Load() < chunks/7-1 || m.BadChunks.Load() != 0 {
		t.Fatalf("bob fetched %d chunks (want each of %d once) with %d retries", m.ChunksFetched.Load(), chunks, m.Retries.Load())
	}
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

// strangerOffer starts a hub and, peered only with it, carol and bob (configured by configureBob),
// strangers to each other; carol sends bob 2 MiB with subject (above the automatic limit for
// strangers) and it returns once bob's notice is in his INBOX, with every connection bob's node made
// or took since before carol submitted (bobSees).
func strangerOffer(t *testing.T, configureBob func(*Config), subject string) (carol, bob *Node, bobSees *connWatch) {
	t.Helper()
	hub := startAt(t, tangle.DevNet, nil)
	carol = startAt(t, tangle.DevNet, nil, hub)
	bob = startAt(t, tangle.DevNet, configureBob, hub)
	waitFor(t, "peering through the hub", 30*time.Second, func() bool {
		return carol.Network().PeerCount() >= 1 && bob.Network().PeerCount() >= 1
	})
	bobSees = watchConns(bob)
	to := bob.Identity().Address().Mail()
	submit(t, carol, []string{to}, attachMail(carol.Identity().Address().Mail(), to, subject, 2<<20))
	waitFor(t, "the notice in bob's INBOX", 60*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 1
	})
	return carol, bob, bobSees
}

// TestAttachmentStrangerNeedsConsent: carol, a stranger to bob, sends him 2 MiB (above the 1 MiB
// automatic limit for strangers). Carol and bob share only a hub node. Bob gets a notice (sender,
// subject, size) in INBOX and the mail waits in GET /api/blobs; accepting it does not make bob's node
// dial carol's (he has no relay or provider, so there is no private route), and nothing is fetched.
func TestAttachmentStrangerNeedsConsent(t *testing.T) {
	carol, bob, bobSees := strangerOffer(t, nil, "big file from a stranger")
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
	// Not even for a moment, in either direction, since before carol sent the offer.
	for _, c := range bobSees.list() {
		if c.peer == carol.Network().Host().ID() {
			t.Fatalf("bob's node and carol's connected (%s)", c.addr)
		}
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
	deliverIntact(t, alice, bob, "from my phone")
	if s.blobs.metrics.PutsStored.Load() != 1 || alice.Status().Outbox.Stats.Published != 1 {
		t.Fatalf("puts stored at the provider %d, blocks alice published %d", s.blobs.metrics.PutsStored.Load(), alice.Status().Outbox.Stats.Published)
	}
}

// TestAttachmentStrangerOfferExpires: a stranger's large mail that bob never accepts is dropped when
// its blob's lifetime ends, and bob learns it from a second notice in INBOX (nothing silently vanishes).
func TestAttachmentStrangerOfferExpires(t *testing.T) {
	clock := testclock.New(time.Now())
	carol, bob, _ := strangerOffer(t, func(c *Config) { c.blobClock = clock.Now }, "never accepted")
	clock.Advance(29 * 24 * time.Hour) // past any TTL (at most 28 days)
	bob.blobs.kick()
	waitFor(t, "the expiry notice in bob's INBOX", 30*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 2
	})
	notice := string(inboxMessages(t, bob, store.RoleInbox)[1])
	for _, want := range []string{"Subject: Large mail expired: never accepted", "X-Tanglemail-Blob-Expired: ",
		carol.Identity().Address().Mail(), "2.0 MiB", "You did not accept it in time"} {
		if !strings.Contains(notice, want) {
			t.Fatalf("expiry notice lacks %q:\n%s", want, notice)
		}
	}
	if p, _ := bob.PendingBlobs(context.Background()); len(p) != 0 {
		t.Fatalf("still pending after expiry: %+v", p)
	}
	bob.blobs.kick()
	if n := len(inboxMessages(t, bob, store.RoleInbox)); n != 2 {
		t.Fatalf("bob's INBOX has %d messages, want the two notices", n)
	}
}

// TestAttachmentSenderProgress: alice's large mail goes through her storage node; GET /api/blobs/sent
// (and /api/status's blobs.sending) shows it offered, then fetched by bob once his receipt came, with
// the provider holding it. While SealBlob runs, the live entry shows sealing and upload progress.
func TestAttachmentSenderProgress(t *testing.T) {
	_, alice, bob := providerPair(t)
	from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
	submit(t, alice, []string{to}, attachMail(from, to, "progress please", 2<<20))
	a := apiOf(t, alice)
	var sends []api.BlobSend
	waitFor(t, "bob's fetch shown at alice", 90*time.Second, func() bool {
		a.call("GET", "/api/blobs/sent", nil, &sends, http.StatusOK)
		return len(sends) == 1 && sends[0].Stage == "done"
	})
	s := sends[0]
	if s.Subject != "progress please" || s.Size < 2<<20 || s.Sealed != s.Size || s.Providers != 1 || s.ProvidersDone != 1 ||
		len(s.Recipients) != 1 || s.Recipients[0].State != "fetched" || s.Recipients[0].Address != to || s.Expires == "" {
		t.Fatalf("GET /api/blobs/sent: %+v", s)
	}
	if st := alice.Status(); st.Blobs == nil || len(st.Blobs.Sending) != 1 || st.Blobs.Sending[0].OutboxID != s.OutboxID {
		t.Fatalf("status blobs: %+v", st.Blobs)
	}
	items, err := alice.Mailboxes().OutboxItems(context.Background())
	if err != nil || len(items) != 1 || !alice.blobs.HoldsBlob(items[0].ID, items[0].Created) || alice.blobs.HoldsBlob(items[0].ID+1, items[0].Created) {
		t.Fatalf("HoldsBlob: items %v, err %v", items, err)
	}

	// The live part, step by step: sealing, then uploading.
	b := alice.blobs
	b.startSend(99, 1000)
	if _, err := io.Copy(io.Discard, countingReader{bytes.NewReader(make([]byte, 400)), b, 99}); err != nil {
		t.Fatal(err)
	}
	a.call("GET", "/api/blobs/sent", nil, &sends, http.StatusOK)
	if len(sends) != 2 || sends[0].OutboxID != 99 || sends[0].Stage != "sealing" || sends[0].Sealed != 400 || sends[0].Size != 1000 {
		t.Fatalf("while sealing: %+v", sends)
	}
	b.progress(99, func(s *api.BlobSend) { s.Stage = "uploading" })
	b.uploaded(blob.ID{}, 1, 4)
	a.call("GET", "/api/blobs/sent", nil, &sends, http.StatusOK)
	if sends[0].Stage != "uploading" || sends[0].Uploaded != 250 {
		t.Fatalf("while uploading: %+v", sends[0])
	}
	b.endSend(99, errors.New("the storage provider refused the upload"))
	a.call("GET", "/api/blobs/sent", nil, &sends, http.StatusOK)
	if len(sends) != 2 || sends[0].Stage != "uploading" || sends[0].Error != "the storage provider refused the upload" {
		t.Fatalf("after a failed SealBlob: %+v", sends)
	}
	b.startSend(99, 1000)
	b.endSend(99, nil)
	a.call("GET", "/api/blobs/sent", nil, &sends, http.StatusOK)
	if len(sends) != 1 {
		t.Fatalf("after SealBlob: %+v", sends)
	}
}

// connWatch records the connections of a libp2p host from now on: remote peer and address.
type connWatch struct {
	mu    sync.Mutex
	conns []peerConn
}

type peerConn struct {
	peer peer.ID
	addr string
}

func watchConns(n *Node) *connWatch {
	w := &connWatch{}
	n.Network().Host().Network().Notify(&lpnet.NotifyBundle{ConnectedF: func(_ lpnet.Network, c lpnet.Conn) {
		w.mu.Lock()
		w.conns = append(w.conns, peerConn{c.RemotePeer(), c.RemoteMultiaddr().String()})
		w.mu.Unlock()
	}})
	return w
}

func (w *connWatch) list() []peerConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]peerConn(nil), w.conns...)
}

// TestAttachmentStrangerThroughRelay: carol, a stranger to bob, sends him 2 MiB. Bob and carol share
// a public node (the hub) that relays; carol holds a reservation there, and the hub is bob's chosen
// relay. Bob accepts the mail and gets it byte for byte, fetched from carol's node through the hub,
// while bob's node and carol's node never connect, in either direction, directly or relayed: carol's
// node sees only a one-time peer through the relay.
func TestAttachmentStrangerThroughRelay(t *testing.T) {
	hcfg := testConfig(t, t.TempDir())
	hcfg.RelayService = true
	hub := startNode(t, hcfg)
	hubAddrs := hub.Network().Addrs()[:1]
	carol := startAt(t, tangle.DevNet, func(c *Config) { c.Relays = hubAddrs }, hub)
	bob := startAt(t, tangle.DevNet, func(c *Config) { c.Relays = hubAddrs }, hub)
	bobSees, carolSees := watchConns(bob), watchConns(carol)
	waitFor(t, "carol's reservation at the hub", 30*time.Second, func() bool {
		return len(carol.Network().Status().RelayAddrs) > 0 && bob.Network().PeerCount() >= 1
	})
	from, to := carol.Identity().Address().Mail(), bob.Identity().Address().Mail()
	raw := attachMail(from, to, "through the relay", 2<<20)
	submit(t, carol, []string{to}, raw)
	var pending []api.PendingBlob
	a := apiOf(t, bob)
	waitFor(t, "the offer at bob", 60*time.Second, func() bool {
		a.call("GET", "/api/blobs", nil, &pending, http.StatusOK)
		return len(pending) == 1 && pending[0].Waiting
	})
	a.call("POST", "/api/blobs/"+pending[0].Key+"/accept", nil, nil, http.StatusOK)
	waitFor(t, "the mail in bob's INBOX", 90*time.Second, func() bool {
		return len(inboxMessages(t, bob, store.RoleInbox)) == 2
	})
	got := inboxMessages(t, bob, store.RoleInbox)
	if sha256.Sum256(got[1]) != sha256.Sum256([]byte(raw)) {
		t.Fatal("bob's message differs from what carol submitted")
	}
	bobID, carolID, hubID := bob.Network().Host().ID(), carol.Network().Host().ID(), hub.Network().Host().ID()
	for _, c := range bobSees.list() {
		if c.peer == carolID {
			t.Errorf("bob's node connected to carol's: %s", c.addr)
		}
	}
	relayed := 0
	for _, c := range carolSees.list() {
		if c.peer == bobID {
			t.Errorf("carol's node connected to bob's: %s", c.addr)
		}
		if c.peer != hubID && strings.Contains(c.addr, "/p2p-circuit") {
			relayed++
		}
	}
	if relayed == 0 || carol.blobs.metrics.ChunksServed.Load() == 0 {
		t.Fatalf("carol served %d chunks over %d relayed connections; connections: %v",
			carol.blobs.metrics.ChunksServed.Load(), relayed, carolSees.list())
	}
	if connected(bob, carol) {
		t.Fatal("bob's node is connected to carol's")
	}
}

// TestAttachmentLightUploadCountsAgainstQuota: a light client's large mail, uploaded to its storage
// provider, counts against its subscription's quota (the provider's status and the client's own
// storage status say so); a subscription too small for the next one refuses the upload with the quota
// error, and the mail waits in the outbox (nothing published) instead of reaching anyone.
func TestAttachmentLightUploadCountsAgainstQuota(t *testing.T) {
	s := startStorageNode(t, tangle.DevNet)
	g, err := s.p.Grant(context.Background(), 3, 30) // 3 MiB: one 2 MiB mail fits, two do not
	if err != nil {
		t.Fatal(err)
	}
	cfg := lightConfig(t, t.TempDir(), s, g)
	cfg.StorageStatusInterval = 200 * time.Millisecond // the usage, as the provider reports it, soon
	alice := startLight(t, cfg)
	waitFor(t, "the provider to know alice's client as a subscriber", 30*time.Second, func() bool {
		return s.p.Subscriber(alice.light.hosts[0].ID())
	})
	bobID, err := identity.Generate(8)
	if err != nil {
		t.Fatal(err)
	}
	bob := bobID.Address().Mail()
	from := alice.Identity().Address().Mail()
	submit(t, alice, []string{bob}, attachMail(from, bob, "first", 2<<20))
	waitFor(t, "the first upload", 60*time.Second, func() bool { return s.blobs.metrics.PutsStored.Load() == 1 })
	subUsed := func() uint64 {
		st := alice.Status()
		if len(st.Storage) != 1 {
			return 0
		}
		return st.Storage[0].UsedBytes
	}
	waitFor(t, "the upload in alice's storage usage", 30*time.Second, func() bool { return subUsed() >= 2<<20 })
	submit(t, alice, []string{bob}, attachMail(from, bob, "second", 2<<20))
	waitFor(t, "the second upload refused at the quota", 60*time.Second, func() bool {
		return s.blobs.metrics.Refused.Load() >= 1
	})
	if s.blobs.metrics.PutsStored.Load() != 1 {
		t.Fatalf("the provider stored %d uploads, want 1", s.blobs.metrics.PutsStored.Load())
	}
	items, err := alice.Mailboxes().OutboxItems(context.Background())
	if err != nil || len(items) != 2 {
		t.Fatalf("outbox: %v %v", items, err)
	}
	second := items[0]
	for _, it := range items {
		if it.ID > second.ID {
			second = it
		}
	}
	if second.Rcpts[0].State != store.RcptPending || alice.Status().Outbox.Stats.Published != 1 {
		t.Fatalf("the second mail went on without its upload: %+v, %d published", second.Rcpts[0], alice.Status().Outbox.Stats.Published)
	}
	waitFor(t, "the reason in GET /api/blobs/sent", 30*time.Second, func() bool {
		sends, err := alice.BlobSends(context.Background())
		return err == nil && len(sends) == 2 && sends[0].OutboxID == int64(second.ID) && sends[0].Stage == "uploading" &&
			strings.Contains(sends[0].Error, "past its quota")
	})
}

// TestAttachmentToSelfAndTwoRecipients: one large mail from alice to bob and carol, with herself in
// Cc. It is sealed into one blob that every recipient fetches by the same ref; alice's own copy is
// filed without asking her consent, and filing it does not drop the blob she serves: carol, off while
// alice filed hers, fetches it from alice afterwards. All three copies are the submitted bytes.
func TestAttachmentToSelfAndTwoRecipients(t *testing.T) {
	nodes := startDevnet(t, tangle.DevNet, 3)
	alice, bob, carol := nodes[0], nodes[1], nodes[2]
	from := alice.Identity().Address().Mail()
	for _, n := range []*Node{bob, carol} {
		if err := n.Mailboxes().AddContact(context.Background(), "alice", from); err != nil {
			t.Fatal(err)
		}
	}
	carolCfg := carol.cfg
	carol.Close()
	to := []string{bob.Identity().Address().Mail(), carol.Identity().Address().Mail(), from}
	raw := attachMailBytes(from, to[0], "for the three of us", 2<<20)
	want := sha256.Sum256(raw)
	submit(t, alice, to, string(raw))
	for _, n := range []*Node{alice, bob} {
		waitFor(t, "the mail in an INBOX", 120*time.Second, func() bool {
			return len(inboxMessages(t, n, store.RoleInbox)) == 1
		})
		if got := inboxMessages(t, n, store.RoleInbox); sha256.Sum256(got[0]) != want {
			t.Fatalf("%s's copy differs from what alice submitted:\n%.300s", n.Identity().Address().Mail(), got[0])
		}
	}
	// One blob for all recipients, still held by alice after her own copy was filed.
	refs, _ := filepath.Glob(filepath.Join(alice.cfg.DataDir, BlobsDir, "out", "*.ref"))
	if len(refs) != 1 {
		t.Fatalf("alice sealed %d blobs, want one for all recipients", len(refs))
	}
	enc, err := os.ReadFile(refs[0])
	if err != nil {
		t.Fatal(err)
	}
	ref, err := blob.DecodeRef(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !alice.blobs.st.Complete(ref.ID) {
		t.Fatal("filing alice's own copy deleted the blob she serves to the other recipients")
	}
	// No chunk blocks: the envelope(s) and the receipt alice sends herself, never 2 MiB / 32 KiB.
	if st := alice.Status().Outbox.Stats; st.Published-st.ReceiptsSent > 3 {
		t.Fatalf("alice published %d blocks (%d receipts): chunks were sent", st.Published, st.ReceiptsSent)
	}
	carol = startNode(t, carolCfg)
	carol.blobs.kick()
	waitFor(t, "the mail in carol's INBOX", 120*time.Second, func() bool {
		return len(inboxMessages(t, carol, store.RoleInbox)) == 1
	})
	if got := inboxMessages(t, carol, store.RoleInbox); sha256.Sum256(got[0]) != want {
		t.Fatalf("carol's copy differs from what alice submitted:\n%.300s", got[0])
	}
}

// TestAttachmentLightFetchOnePeerIDPerProvider: bob's light client has two storage providers; alice's
// large mail is held by the second one (her own provider too). Bob fetches it from there through the
// host that provider knows him by, so no peer id of bob's is seen by both providers (which could then
// link his two subscriptions, protocol.md §12.6).
func TestAttachmentLightFetchOnePeerIDPerProvider(t *testing.T) {
	params := tangle.DevNet
	s1, s2 := startStorageNode(t, params), startStorageNode(t, params)
	w1, w2 := watchConns(s1.Node), watchConns(s2.Node)
	alice := startAt(t, params, func(c *Config) {
		c.Bootstrap = []string{s2.addr()}
		c.StorageProviders = []string{s2.addr()}
		c.StorageGrants = []string{s2.grant(t)}
	})
	select {
	case <-alice.LightClients()[0].Synced():
	case <-time.After(60 * time.Second):
		t.Fatalf("alice's subscription did not sync: %+v", alice.LightClients()[0].Status())
	}
	cfg := lightConfig(t, t.TempDir(), s1, s1.grant(t))
	cfg.StorageProviders = append(cfg.StorageProviders, s2.addr())
	cfg.StorageGrants = append(cfg.StorageGrants, s2.grant(t))
	bob := startLight(t, cfg)
	select {
	case <-bob.LightClients()[1].Synced():
	case <-time.After(60 * time.Second):
		t.Fatalf("bob's second subscription did not sync: %+v", bob.LightClients()[1].Status())
	}
	from, to := alice.Identity().Address().Mail(), bob.Identity().Address().Mail()
	raw := attachMail(from, to, "held by s2", 200<<10)
	submit(t, alice, []string{to}, raw)
	waitFor(t, "the attachment in bob's INBOX", 90*time.Second, func() bool { return mailboxCount(t, bob, store.RoleInbox) == 1 })
	if got := inboxMessages(t, bob, store.RoleInbox); sha256.Sum256(got[0]) != sha256.Sum256([]byte(raw)) {
		t.Fatal("bob's message differs from what alice submitted")
	}
	seen := func(w *connWatch) map[peer.ID]bool {
		out := map[peer.ID]bool{}
		for _, c := range w.list() {
			out[c.peer] = true
		}
		return out
	}
	by1, by2 := seen(w1), seen(w2)
	for id := range by1 {
		if by2[id] && id != alice.Network().Host().ID() && id != s1.Network().Host().ID() && id != s2.Network().Host().ID() {
			t.Errorf("peer id %s seen by both of bob's providers", id)
		}
	}
	if !by2[bob.light.hosts[1].ID()] || by2[bob.light.hosts[0].ID()] {
		t.Errorf("s2 saw bob's first provider's host %v / its own %v: %v", by2[bob.light.hosts[0].ID()], by2[bob.light.hosts[1].ID()], by2)
	}
}
