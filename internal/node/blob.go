package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/blob"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/inbox"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/storage"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/web"
)

// BlobsDir is the blob store in the data directory (protocol.md §13): sealed blobs this node serves
// (its own large mail) or is fetching (mail to it), the refs of its own blobs by outbox item (out/)
// and the blob mails waiting to be fetched and filed (pending/).
const BlobsDir = "blobs"

// Defaults of Config.BlobAutoContact and BlobAutoStranger: mail from contacts is fetched up to the
// largest message (25 MiB), from strangers up to 1 MiB; larger needs the recipient's consent.
const (
	DefaultBlobAutoContact  = 25 << 20
	DefaultBlobAutoStranger = 1 << 20
	defaultBlobBudget       = 4 << 30
)

// blobSide is the node's blob service: it seals the outbox's large mail into blobs and serves them
// (outbox.BlobSealer), and takes the inbox's blob mails (inbox.BlobHandler), fetches their blobs and
// files the messages. Pending fetches are files in pending/ (atomicfile), written before the inbox's
// HandleBlobMail returns, removed only after the message was filed (its replay key claimed): a
// restart resumes them, and a message is filed once.
type blobSide struct {
	n       *Node
	st      *blob.Store
	srv     *blob.Server
	cl      *blob.Client
	put     []*blob.Client   // per storage provider (a light client); nil: cl
	served  bool             // this node serves its blobs (a full node): it is a holder of its own
	now     func() time.Time // expiry of pending blob mail (Config.blobClock)
	metrics *blob.Metrics
	dir     string

	sealMu sync.Mutex // one SealBlob at a time: one blob per outbox item
	pendMu sync.Mutex // orders the writes of pending/ records after their creation (update)
	wake   chan struct{}

	mu       sync.Mutex
	next     map[string]time.Time // replay key → earliest next fetch attempt (backoff)
	fetching string               // replay key being fetched now

	// The sender's progress (blobsend.go).
	progMu      sync.Mutex
	sealing     map[store.OutboxID]*api.BlobSend // in SealBlob now
	uploading   store.OutboxID                   // the item SealBlob works on
	own         map[blob.ID]bool                 // blobs of the node's own large mail (from out/)
	servedBytes map[blob.ID]uint64               // plaintext bytes of own blobs served since start
}

// pendingBlob is a blob mail waiting to be fetched and filed (pending/<replay key>.json).
type pendingBlob struct {
	ReplayKey string    `json:"replay_key"` // hex
	Sender    string    `json:"sender"`     // identity.Address
	Sent      time.Time `json:"sent"`
	Block     string    `json:"block"` // hex
	Ref       []byte    `json:"ref"`
	Header    []byte    `json:"header,omitempty"`
	Expires   time.Time `json:"expires"`            // how long the replay key is kept (filing)
	FetchBy   time.Time `json:"fetch_by,omitempty"` // the envelope block's expiry: the holders keep the blob until then
	TTL       uint32    `json:"ttl"`
	Size      uint64    `json:"size"`
	Accepted  bool      `json:"accepted,omitempty"` // the recipient consented (above the automatic limit)
	Noticed   bool      `json:"noticed,omitempty"`  // the notice is in INBOX
	LastError string    `json:"last_error,omitempty"`
}

// openBlobs opens the blob store and serves it on the node's host (a full node).
func (n *Node) openBlobs() error {
	return n.openBlobsWith(blob.NodeDialer(n.net), nil, func(proto string, h func(p2p.Stream)) { n.net.HandleStream(proto, h) })
}

// openLightBlobs opens a light client's blob store: it serves nothing (a light client is not
// reachable), uploads each blob to its providers through the host that provider knows it by (so the
// provider authorizes it as its subscriber) and fetches through the first provider's host.
func (n *Node) openLightBlobs() error {
	if len(n.light.hosts) == 0 {
		return nil
	}
	var put []blob.Dialer
	for _, h := range n.light.hosts {
		put = append(put, h)
	}
	return n.openBlobsWith(n.light.hosts[0], put, nil)
}

// openBlobsWith opens the blob store; d fetches (and uploads when put is nil), put[i] uploads to
// Config.StorageProviders[i], serve registers the blob protocol (nil: not served).
func (n *Node) openBlobsWith(d blob.Dialer, put []blob.Dialer, serve func(string, func(p2p.Stream))) error {
	dir := filepath.Join(n.cfg.DataDir, BlobsDir)
	st, err := blob.OpenStore(dir, defaultBlobBudget)
	if err != nil {
		return fmt.Errorf("open blob store: %w", err)
	}
	for _, sub := range []string{"out", "pending"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			st.Close()
			return err
		}
	}
	m := &blob.Metrics{}
	proto := blob.Protocol(p2p.ProtocolPrefix(n.cfg.Network.ID))
	b := &blobSide{n: n, st: st, metrics: m, dir: dir, wake: make(chan struct{}, 1), next: map[string]time.Time{}, now: n.cfg.blobClock,
		sealing: map[store.OutboxID]*api.BlobSend{}, own: map[blob.ID]bool{}, servedBytes: map[blob.ID]uint64{}}
	if b.now == nil {
		b.now = time.Now
	}
	b.srv = &blob.Server{Store: st, Metrics: m, Authorize: b.authorize, Served: b.chunkServed, ResetAfter: n.cfg.blobResetAfter}
	b.cl = &blob.Client{Net: d, Store: st, Proto: proto, Metrics: m, Uploaded: b.uploaded}
	for _, pd := range put {
		b.put = append(b.put, &blob.Client{Net: pd, Store: st, Proto: proto, Metrics: m, Uploaded: b.uploaded})
	}
	if serve != nil {
		serve(proto, func(s p2p.Stream) { b.srv.Serve(s) })
		b.served = true
	}
	n.blobs = b
	return nil
}

// authorize: anyone who knows a complete blob's id may get it (the content is sealed; the id is only
// in sealed envelopes); puts only from this node's storage subscribers (a light client's upload),
// each counted against the subscription's quota until the blob expires (storage.ChargeBlob).
func (b *blobSide) authorize(ctx context.Context, r blob.Request) error {
	if r.Op == blob.OpGet {
		return nil
	}
	if p := b.n.provider; p != nil && p.p.Subscriber(r.Peer) {
		sealed := r.Size + uint64(blob.NumChunks(r.Size))*blob.Overhead
		err := p.p.ChargeBlob(ctx, r.Peer, r.ID, sealed, r.Expires)
		if errors.Is(err, storage.ErrQuota) {
			return fmt.Errorf("%w: %v", blob.ErrBudget, err)
		}
		return err
	}
	return errors.New("this node takes blob uploads only from its storage subscribers")
}

// SealBlob is outbox.BlobSealer: one blob per outbox item, its ref kept in out/<id>-<created>.ref so that every
// recipient, also after a restart, gets the same blob. The node's own peer id and addresses are the
// holder (flagged as the sender's, protocol.md §13.2).
func (b *blobSide) SealBlob(ctx context.Context, id store.OutboxID, created time.Time, msg io.Reader, expires time.Time) ([]byte, error) {
	b.sealMu.Lock()
	defer b.sealMu.Unlock()
	enc, err := b.sealBlob(ctx, id, created, msg, expires)
	b.endSend(id, err)
	return enc, err
}

func (b *blobSide) sealBlob(ctx context.Context, id store.OutboxID, created time.Time, msg io.Reader, expires time.Time) ([]byte, error) {
	path := b.refPath(id, created)
	if enc, err := os.ReadFile(path); err == nil {
		if ref, err := blob.DecodeRef(enc); err == nil && b.st.Complete(ref.ID) {
			return enc, nil
		}
	}
	var size int64 // the submitted message's size: the progress's 100 % (Bcc removed, it is a little less)
	if it, err := b.n.mail.OutboxItem(ctx, id); err == nil {
		size = it.Size
	}
	b.startSend(id, size)
	ref, err := b.st.Seal(countingReader{msg, b, id}, expires)
	if err != nil {
		return nil, err
	}
	b.progress(id, func(s *api.BlobSend) { s.Size, s.Sealed = ref.Size, ref.Size })
	ref.Holders = nil
	if b.served {
		ref.Holders = []blob.Holder{b.self()}
	}
	var refusal *blob.Error
	// The sender's storage/public nodes hold it too, so that it reaches recipients while this node is
	// off (and they fetch it from a holder that is not the sender's own node).
	for i, s := range b.n.cfg.StorageProviders {
		if len(ref.Holders) == blob.MaxHolders {
			break
		}
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			continue
		}
		b.progress(id, func(s *api.BlobSend) { s.Stage, s.Uploaded = "uploading", 0 })
		pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		cl := b.cl
		if i < len(b.put) {
			cl = b.put[i]
		}
		err = cl.Put(pctx, blob.Route{Peer: ai.ID, Addrs: ai.Addrs}, ref.ID, time.Until(expires))
		cancel()
		b.progress(id, func(s *api.BlobSend) { s.ProvidersDone++ })
		if err != nil {
			b.n.log.Warn("blob: upload to a storage provider failed; the blob is served by this node only", "provider", ai.ID.ShortString())
			b.n.log.Debug("blob: upload failed", "err", err)
			if be := (*blob.Error)(nil); errors.As(err, &be) && be.Code == blob.CodeQuotaFull {
				refusal = be // the provider's own words, no address in them: the user sees why
			}
			continue
		}
		h := blob.Holder{Peer: ai.ID}
		h.Addrs = ai.Addrs[:min(len(ai.Addrs), blob.MaxHolderAddrs)]
		ref.Holders = append(ref.Holders, h)
	}
	if len(ref.Holders) == 0 {
		// A light client serves nothing: without a provider's copy no recipient could fetch it.
		b.st.Delete(ref.ID)
		if refusal != nil {
			return nil, fmt.Errorf("blob: the storage provider refused the upload (%s); will retry", refusal.Msg)
		}
		return nil, errors.New("blob: no storage provider took the upload; will retry")
	}
	enc, err := ref.Encode()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, enc, 0o600); err != nil {
		return nil, err
	}
	b.n.log.Info("blob: sealed a large mail", "outbox", id, "bytes", ref.Size)
	return enc, nil
}

// self is this node as the holder of its own blobs (flagged as the sender's, protocol.md §13.2).
func (b *blobSide) self() blob.Holder {
	h := b.n.net.Host()
	self := blob.Holder{Peer: h.ID(), Sender: true}
	for _, a := range h.Addrs() {
		if len(self.Addrs) == blob.MaxHolderAddrs {
			break
		}
		self.Addrs = append(self.Addrs, a)
	}
	return self
}

// sealInbound stores msg, a message the gateway received from the Internet and holds only in memory,
// as a sealed blob that this node serves until expires, and returns its encoded ref. Nothing is written
// but the blob's ciphertext: the ref (with the blob's key) goes only into the envelopes sealed to the
// recipients (outbox.EnqueueSealedBlob), so the gateway cannot read what it keeps.
func (b *blobSide) sealInbound(msg []byte, expires time.Time) ([]byte, error) {
	if !b.served {
		return nil, errors.New("blob: this node does not serve blobs")
	}
	ref, err := b.st.Seal(bytes.NewReader(msg), expires)
	if err != nil {
		return nil, err
	}
	ref.Holders = []blob.Holder{b.self()}
	enc, err := ref.Encode()
	if err != nil {
		b.st.Delete(ref.ID)
		return nil, err
	}
	return enc, nil
}

// deadline is the latest p's blob can be fetched.
func (p *pendingBlob) deadline() time.Time {
	if !p.FetchBy.IsZero() {
		return p.FetchBy
	}
	return p.Expires
}

func (b *blobSide) pendingPath(key string) string {
	return filepath.Join(b.dir, "pending", key+".json")
}

// update changes the pending record key on disk: loaded afresh and saved under pendMu, so that the
// fetcher's bookkeeping (its copy may be stale) and the user's accept never undo each other, and a
// record already removed (filed, expired) is not written again.
func (b *blobSide) update(key string, f func(*pendingBlob)) error {
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	p, err := b.load(key)
	if err != nil {
		return err
	}
	f(p)
	return b.save(p)
}

func (b *blobSide) save(p *pendingBlob) error {
	enc, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return atomicfile.Write(b.pendingPath(p.ReplayKey), enc, 0o600)
}

// HandleBlobMail is inbox.BlobHandler: it records the blob mail durably and wakes the fetcher.
func (b *blobSide) HandleBlobMail(ctx context.Context, m inbox.BlobMail) error {
	ref, err := blob.DecodeRef(m.Ref)
	if err != nil {
		return fmt.Errorf("blob mail: %w", err) // malformed: a sender's bug; nothing to fetch
	}
	key := hex.EncodeToString(m.ReplayKey[:])
	if _, err := os.Stat(b.pendingPath(key)); err == nil {
		return nil // known, being fetched
	}
	p := &pendingBlob{ReplayKey: key, Sender: m.Sender.String(), Sent: m.Sent, Block: hex.EncodeToString(m.Block[:]),
		Ref: m.Ref, Header: m.Header, Expires: m.Expires, TTL: m.TTL, Size: ref.Size}
	// The sender's holders keep the blob as long as its envelope lives (protocol.md §13.7), not for
	// the whole replay window: past the block's expiry the offer is over.
	if b.n.store != nil {
		if blk, err := b.n.store.Get(m.Block); err == nil && blk.ExpiresAt().Before(m.Expires) {
			p.FetchBy = blk.ExpiresAt()
		}
	}
	if err := b.save(p); err != nil {
		return err
	}
	b.kick()
	return nil
}

func (b *blobSide) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *blobSide) load(key string) (*pendingBlob, error) {
	enc, err := os.ReadFile(b.pendingPath(key))
	if err != nil {
		return nil, err
	}
	var p pendingBlob
	if err := json.Unmarshal(enc, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// list returns the pending blob mails, oldest first.
func (b *blobSide) list() []*pendingBlob {
	ents, err := os.ReadDir(filepath.Join(b.dir, "pending"))
	if err != nil {
		return nil
	}
	var out []*pendingBlob
	for _, e := range ents {
		key, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if p, err := b.load(key); err == nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sent.Before(out[j].Sent) })
	return out
}

// run works the pending blob mails until ctx is done: on a wake, and every few seconds for retries.
func (b *blobSide) run(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		for _, p := range b.list() {
			if ctx.Err() != nil {
				return
			}
			b.work(ctx, p)
		}
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-t.C:
			b.st.Prune()
		}
	}
}

// isContact reports whether sender's large mail is treated as a contact's: fetched up to
// BlobAutoContact without consent, and directly from the sender's node. On a gateway node an identity
// that holds a claim there counts: its large mail is a relay message for the Internet (protocol.md
// §15.4) that the claimant chose to send through this gateway, which already knows who it is, and no
// operator is there to consent. On a user's node, the user's own relay gateway (Config.RelayGateway,
// recorded by the claim) counts: its large mail is the user's Internet mail.
func (b *blobSide) isContact(ctx context.Context, sender identity.Address) bool {
	if sender.Equal(b.n.id.Address()) {
		return true // the user's own mail (to self, or Cc self)
	}
	if gw := b.n.cfg.RelayGateway; gw.Key != nil && sender.Equal(gw) {
		return true
	}
	for _, a := range []string{sender.String(), sender.Mail()} {
		if cs, err := b.n.mail.ContactsByAddress(ctx, a); err == nil && len(cs) > 0 {
			return true
		}
	}
	if gw := b.n.Gateway(); gw != nil {
		if claims, err := gw.Claims().ClaimsOf(ctx, sender); err == nil && len(claims) > 0 {
			return true
		}
	}
	return false
}

// providers are the recipient's own storage/public nodes and relays: trusted holders, and the relays
// through which a stranger's holders are reached (protocol.md §13.5).
func (b *blobSide) providers() (map[peer.ID]bool, []peer.AddrInfo) {
	trusted := map[peer.ID]bool{}
	var relays []peer.AddrInfo
	for _, s := range append(append([]string{}, b.n.cfg.StorageProviders...), b.n.cfg.Relays...) {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			continue
		}
		trusted[ai.ID] = true
		relays = append(relays, *ai)
	}
	return trusted, relays
}

// work advances one pending blob mail: dropped past its expiry (with a notice in INBOX), a notice for a
// stranger's mail above the limit without consent, else a fetch (with backoff after a failure) and the
// filing.
func (b *blobSide) work(ctx context.Context, p *pendingBlob) {
	if !b.now().Before(p.deadline()) {
		b.expire(ctx, p)
		return
	}
	now := time.Now()
	b.mu.Lock()
	wait := now.Before(b.next[p.ReplayKey])
	b.mu.Unlock()
	if wait {
		return
	}
	sender, err := identity.ParseAddress(p.Sender)
	ref, rerr := blob.DecodeRef(p.Ref)
	if err != nil || rerr != nil {
		os.Remove(b.pendingPath(p.ReplayKey))
		return
	}
	contact := b.isContact(ctx, sender)
	limit := b.n.cfg.BlobAutoStranger
	if contact {
		limit = b.n.cfg.BlobAutoContact
	}
	if int64(ref.Size) > limit && !p.Accepted {
		if !p.Noticed {
			if err := b.notice(ctx, p, sender, false); err != nil {
				b.n.log.Warn("blob: filing a notice failed; will retry", "err", err)
				return
			}
			p.Noticed = true
			b.update(p.ReplayKey, func(q *pendingBlob) { q.Noticed = true })
		}
		return
	}
	trusted, relays := b.providers()
	routes := blob.Plan(ref, contact, trusted, relays)
	if len(routes) == 0 {
		if !p.Noticed && b.notice(ctx, p, sender, true) == nil {
			p.Noticed = true
			b.update(p.ReplayKey, func(q *pendingBlob) { q.Noticed = true })
		}
		b.fail(p, errors.New("no private route to a holder: the sender is not a contact and no relay or provider is configured"))
		return
	}
	b.mu.Lock()
	b.fetching = p.ReplayKey
	b.mu.Unlock()
	fctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = b.fetch(fctx, ref, routes, p.deadline())
	cancel()
	b.mu.Lock()
	b.fetching = ""
	b.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			b.fail(p, err)
		}
		return
	}
	if err := b.file(ctx, p, sender, ref); err != nil {
		if ctx.Err() == nil {
			b.fail(p, err)
		}
		return
	}
}

// fetch fetches ref over routes (blob.Plan): the direct ones through the node's host, the relayed
// ones (a stranger's holders) through a fresh client host that exists for this fetch only. The
// node's own host never connects to a stranger's holder, not even through the relay: a connection
// would show the holder the node's peer id and listen addresses (identify), link it to later
// connections, and let hole punching (DCUtR) turn it into a direct one (protocol.md §13.5).
func (b *blobSide) fetch(ctx context.Context, ref blob.Ref, routes []blob.Route, deadline time.Time) error {
	var direct, relayed []blob.Route
	for _, r := range routes {
		if r.Via == blob.Relayed {
			relayed = append(relayed, r)
		} else {
			direct = append(direct, r)
		}
	}
	var errs []error
	if len(direct) > 0 {
		err := b.fetchDirect(ctx, ref, direct, deadline)
		if err == nil || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	if len(relayed) > 0 {
		err := b.fetchPrivately(ctx, ref, relayed, deadline)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// fetchDirect fetches ref over direct routes. A full node uses its own host. A light client uses, for
// each of its storage providers, the host that provider knows it by, and for any other holder (a
// contact's node) a one-time host: no provider or contact sees a peer id another one knows, so none
// can link the client's subscriptions (protocol.md §12.6).
func (b *blobSide) fetchDirect(ctx context.Context, ref blob.Ref, routes []blob.Route, deadline time.Time) error {
	if len(b.put) == 0 {
		return b.cl.Fetch(ctx, ref, routes, deadline)
	}
	byProvider := make([][]blob.Route, len(b.put))
	var others []blob.Route
	for _, r := range routes {
		if i := b.providerIndex(r.Peer); i >= 0 {
			byProvider[i] = append(byProvider[i], r)
		} else {
			others = append(others, r)
		}
	}
	var errs []error
	for i, rs := range byProvider {
		if len(rs) == 0 {
			continue
		}
		err := b.put[i].Fetch(ctx, ref, rs, deadline)
		if err == nil || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	if len(others) > 0 {
		err := b.fetchOnce(ctx, ref, others, deadline)
		if err == nil || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// providerIndex is the index in Config.StorageProviders (and b.put) of the provider with peer id p, or -1.
func (b *blobSide) providerIndex(p peer.ID) int {
	for i, s := range b.n.cfg.StorageProviders {
		if i >= len(b.put) {
			break
		}
		if ai, err := peer.AddrInfoFromString(s); err == nil && ai.ID == p {
			return i
		}
	}
	return -1
}

// fetchPrivately fetches ref through relays with a one-time client host (fetch).
func (b *blobSide) fetchPrivately(ctx context.Context, ref blob.Ref, relayed []blob.Route, deadline time.Time) error {
	return b.fetchOnce(ctx, ref, relayed, deadline, p2p.WithClientRelay())
}

// fetchOnce fetches ref over routes through a client host made for this fetch only (opts: relayed).
func (b *blobSide) fetchOnce(ctx context.Context, ref blob.Ref, routes []blob.Route, deadline time.Time, opts ...p2p.ClientOption) error {
	ch, err := p2p.NewClientHost(ctx, opts...)
	if err != nil {
		return err
	}
	defer ch.Close()
	cl := &blob.Client{Net: ch, Store: b.st, Proto: b.cl.Proto, Metrics: b.metrics}
	return cl.Fetch(ctx, ref, routes, deadline)
}

// fail records a failed attempt; the next one waits 5 s, doubling to 10 min.
func (b *blobSide) fail(p *pendingBlob, err error) {
	// Fetch errors name holders' addresses: only at debug level (HACKING.md, logs).
	b.n.log.Warn("blob: fetch failed; will retry (GET /api/blobs says why)")
	b.n.log.Debug("blob: fetch failed", "err", err)
	p.LastError = err.Error()
	b.update(p.ReplayKey, func(q *pendingBlob) { q.LastError = p.LastError })
	b.mu.Lock()
	prev := b.next[p.ReplayKey]
	d := 5 * time.Second
	if !prev.IsZero() {
		d = min(2*time.Until(prev)+10*time.Second, 10*time.Minute)
	}
	b.next[p.ReplayKey] = time.Now().Add(d)
	b.mu.Unlock()
}

// file files the message once, read from the complete blob while it is filed (every chunk checked
// again, one chunk in memory at a time: store.NewMessage.Body), then forgets the pending record and
// the blob.
func (b *blobSide) file(ctx context.Context, p *pendingBlob, sender identity.Address, ref blob.Ref) error {
	r, err := b.st.Open(ref)
	if err != nil {
		return err
	}
	var key [32]byte
	var blk tangle.ID
	hex.Decode(key[:], []byte(p.ReplayKey))
	hex.Decode(blk[:], []byte(p.Block))
	_, err = b.n.inbox.FileBlobMail(ctx, inbox.BlobMail{Me: b.n.id, Sender: sender, ReplayKey: key, Sent: p.Sent,
		Block: blk, Expires: p.Expires, TTL: p.TTL}, r)
	if err != nil {
		return fmt.Errorf("blob: filing the fetched message: %w", err)
	}
	os.Remove(b.pendingPath(p.ReplayKey))
	if !b.holds(ref) {
		b.st.Delete(ref.ID)
	}
	b.mu.Lock()
	delete(b.next, p.ReplayKey)
	b.mu.Unlock()
	return nil
}

// holds reports whether this node is one of ref's holders (its own large mail, a gateway's inbound
// mail, a subscriber's upload to this provider): the blob is served to the other recipients until it
// expires, so filing this node's copy must not delete it (the store prunes it at expiry).
func (b *blobSide) holds(ref blob.Ref) bool {
	if !b.served || b.n.net == nil {
		return false
	}
	self := b.n.net.Host().ID()
	for _, h := range ref.Holders {
		if h.Peer == self {
			return true
		}
	}
	return false
}

// expire drops a pending blob mail whose blob can no longer be fetched, after telling the recipient
// in INBOX (a crash between the two repeats the notice; it never loses it).
func (b *blobSide) expire(ctx context.Context, p *pendingBlob) {
	sender, err := identity.ParseAddress(p.Sender)
	if err == nil {
		var sb strings.Builder
		subject := b.noticeHead(&sb, p, "Large mail expired: ", "X-Tanglemail-Blob-Expired")
		fmt.Fprintf(&sb, "%s sent you a mail of %.1f MiB", sender.Mail(), float64(p.Size)/(1<<20))
		if subject != "" {
			fmt.Fprintf(&sb, " (subject %q)", subject)
		}
		fmt.Fprintf(&sb, " that could be fetched until %s.\r\n", p.deadline().UTC().Format(time.RFC1123Z))
		if p.Accepted || int64(p.Size) <= b.limit(ctx, sender) {
			sb.WriteString("It was not downloaded in time")
			if p.LastError != "" {
				sb.WriteString(" (the last attempt failed: " + sanitize(p.LastError) + ")")
			}
			sb.WriteString(".\r\n")
		} else {
			sb.WriteString("You did not accept it in time.\r\n")
		}
		sb.WriteString("It is gone: ask the sender to send it again if you want it.\r\n")
		if err := b.fileNotice(ctx, sb.String()); err != nil {
			b.n.log.Warn("blob: filing an expiry notice failed; will retry", "err", err)
			return
		}
	}
	os.Remove(b.pendingPath(p.ReplayKey))
	b.mu.Lock()
	delete(b.next, p.ReplayKey)
	b.mu.Unlock()
	if ref, err := blob.DecodeRef(p.Ref); err == nil && !b.holds(ref) {
		b.st.Delete(ref.ID) // a partial fetch
	}
}

// limit is the largest blob mail from sender fetched without the recipient's consent.
func (b *blobSide) limit(ctx context.Context, sender identity.Address) int64 {
	if b.isContact(ctx, sender) {
		return b.n.cfg.BlobAutoContact
	}
	return b.n.cfg.BlobAutoStranger
}

// noticeHead writes the header section of a notice about p into sb (subject prefix, and a header
// field naming p's key) and returns p's sanitized subject.
func (b *blobSide) noticeHead(sb *strings.Builder, p *pendingBlob, prefix, field string) string {
	subject := sanitize(headerValue(p.Header, "Subject"))
	sb.WriteString("From: TangleMail <postmaster@tangle>\r\n")
	sb.WriteString("To: " + b.n.id.Address().Mail() + "\r\n")
	sb.WriteString("Subject: " + prefix + subject + "\r\n")
	sb.WriteString("Date: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\n")
	sb.WriteString(field + ": " + p.ReplayKey + "\r\n")
	sb.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
	return subject
}

// fileNotice files a notice in INBOX.
func (b *blobSide) fileNotice(ctx context.Context, raw string) error {
	mb, err := b.n.mail.MailboxByRole(ctx, store.RoleInbox)
	if err != nil {
		return err
	}
	_, err = b.n.mail.Append(ctx, store.NewMessage{MailboxID: mb.ID, Raw: []byte(raw), Received: time.Now()})
	return err
}

// notice files a short message in INBOX about a stranger's large mail that waits for consent.
// noRoute: the mail may be fetched but only privately, and this node has no relay or provider.
func (b *blobSide) notice(ctx context.Context, p *pendingBlob, sender identity.Address, noRoute bool) error {
	var sb strings.Builder
	subject := b.noticeHead(&sb, p, "Large mail waiting: ", "X-Tanglemail-Blob-Pending")
	fmt.Fprintf(&sb, "%s, who is not one of your contacts, sent you a mail of %.1f MiB", sender.Mail(), float64(p.Size)/(1<<20))
	if subject != "" {
		fmt.Fprintf(&sb, " (subject %q)", subject)
	}
	if noRoute {
		sb.WriteString(".\r\nIt was not downloaded: your node fetches a stranger's mail only through your own relay or\r\n")
		sb.WriteString("storage node (so the sender does not learn your address), and none is configured\r\n")
		sb.WriteString("(--relay, --storage-provider). Adding the sender to your contacts also lets it download.\r\n")
	} else {
		sb.WriteString(".\r\nIt is larger than the limit for strangers, so it was not downloaded.\r\n")
		sb.WriteString("To download it, accept it in the web client or with\r\n")
		fmt.Fprintf(&sb, "  POST /api/blobs/%s/accept\r\n", p.ReplayKey)
	}
	fmt.Fprintf(&sb, "It can be fetched until %s.\r\n", p.deadline().UTC().Format(time.RFC1123Z))
	return b.fileNotice(ctx, sb.String())
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// headerValue returns the first (unfolded) value of a header field in a header section, or "".
func headerValue(hdr []byte, name string) string {
	lines := strings.Split(strings.ReplaceAll(string(hdr), "\r\n", "\n"), "\n")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) {
			continue
		}
		for _, c := range lines[i+1:] {
			if c == "" || (c[0] != ' ' && c[0] != '\t') {
				break
			}
			v += " " + strings.TrimSpace(c)
		}
		return strings.TrimSpace(v)
	}
	return ""
}

// accept records the recipient's consent to fetch a pending blob mail (POST /api/blobs/{key}/accept).
func (b *blobSide) accept(key string) error {
	if _, err := hex.DecodeString(key); err != nil || len(key) != 64 {
		return os.ErrNotExist
	}
	if err := b.update(key, func(p *pendingBlob) { p.Accepted = true }); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.next, key)
	b.mu.Unlock()
	b.kick()
	return nil
}

// PendingBlobs is GET /api/blobs (web.Blobs).
func (n *Node) PendingBlobs(ctx context.Context) ([]api.PendingBlob, error) {
	if n.blobs == nil {
		return nil, nil
	}
	return n.blobs.pending(ctx), nil
}

// AcceptBlob is POST /api/blobs/{key}/accept (web.Blobs).
func (n *Node) AcceptBlob(ctx context.Context, key string) error {
	if n.blobs == nil {
		return web.ErrNoSuchBlob
	}
	if err := n.blobs.accept(key); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return web.ErrNoSuchBlob
		}
		return err
	}
	return nil
}

func (b *blobSide) pending(ctx context.Context) []api.PendingBlob {
	out := []api.PendingBlob{}
	for _, p := range b.list() {
		ref, err := blob.DecodeRef(p.Ref)
		if err != nil {
			continue
		}
		sender, err := identity.ParseAddress(p.Sender)
		if err != nil {
			continue
		}
		contact := b.isContact(ctx, sender)
		limit := b.n.cfg.BlobAutoStranger
		if contact {
			limit = b.n.cfg.BlobAutoContact
		}
		out = append(out, api.PendingBlob{Key: p.ReplayKey, Sender: sender.Mail(), Contact: contact,
			Subject: sanitize(headerValue(p.Header, "Subject")), Size: ref.Size, Fetched: b.fetched(ref),
			Waiting: int64(ref.Size) > limit && !p.Accepted, Accepted: p.Accepted,
			Expires: p.deadline().UTC().Format(time.RFC3339), Error: p.LastError})
	}
	return out
}

// fetched is how many plaintext bytes of ref's blob are durable here.
func (b *blobSide) fetched(ref blob.Ref) uint64 {
	if b.st.Complete(ref.ID) {
		return ref.Size
	}
	missing, err := b.st.Missing(ref.ID)
	if err != nil {
		return 0
	}
	have := blob.NumChunks(ref.Size) - len(missing)
	return min(uint64(have)*blob.ChunkSize, ref.Size)
}

func (n *Node) blobStatus() *api.BlobStatus {
	if n.blobs == nil {
		return nil
	}
	return n.blobs.status()
}

// status is the blob section of GET /api/status.
func (b *blobSide) status() *api.BlobStatus {
	used, _, count := b.st.Usage()
	m := b.metrics
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return &api.BlobStatus{Blobs: count, UsedBytes: used, Pending: len(b.list()), Fetches: m.Fetches.Load(),
		ChunksOut: m.ChunksServed.Load(), ChunksIn: m.ChunksFetched.Load(), BadChunks: m.BadChunks.Load(),
		FetchErrors: m.FetchFailures.Load(), Sending: b.sends(ctx)}
}
