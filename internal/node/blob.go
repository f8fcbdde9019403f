package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
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
	put     []*blob.Client // per storage provider (a light client); nil: cl
	served  bool           // this node serves its blobs (a full node): it is a holder of its own
	metrics *blob.Metrics
	dir     string

	sealMu sync.Mutex // one SealBlob at a time: one blob per outbox item
	wake   chan struct{}

	mu       sync.Mutex
	next     map[string]time.Time // replay key → earliest next fetch attempt (backoff)
	fetching string               // replay key being fetched now
}

// pendingBlob is a blob mail waiting to be fetched and filed (pending/<replay key>.json).
type pendingBlob struct {
	ReplayKey string    `json:"replay_key"` // hex
	Sender    string    `json:"sender"`     // identity.Address
	Sent      time.Time `json:"sent"`
	Block     string    `json:"block"` // hex
	Ref       []byte    `json:"ref"`
	Header    []byte    `json:"header,omitempty"`
	Expires   time.Time `json:"expires"`
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
	b := &blobSide{n: n, st: st, metrics: m, dir: dir, wake: make(chan struct{}, 1), next: map[string]time.Time{}}
	b.srv = &blob.Server{Store: st, Metrics: m, Authorize: b.authorize}
	b.cl = &blob.Client{Net: d, Store: st, Proto: proto, Metrics: m}
	for _, pd := range put {
		b.put = append(b.put, &blob.Client{Net: pd, Store: st, Proto: proto, Metrics: m})
	}
	if serve != nil {
		serve(proto, func(s p2p.Stream) { b.srv.Serve(s) })
		b.served = true
	}
	n.blobs = b
	return nil
}

// authorize: anyone who knows a complete blob's id may get it (the content is sealed; the id is only
// in sealed envelopes); puts only from this node's storage subscribers (a light client's upload).
func (b *blobSide) authorize(ctx context.Context, r blob.Request) error {
	if r.Op == blob.OpGet {
		return nil
	}
	if p := b.n.provider; p != nil && p.p.Subscriber(r.Peer) {
		return nil
	}
	return errors.New("this node takes blob uploads only from its storage subscribers")
}

// SealBlob is outbox.BlobSealer: one blob per outbox item, its ref kept in out/<id>-<created>.ref so that every
// recipient, also after a restart, gets the same blob. The node's own peer id and addresses are the
// holder (flagged as the sender's, protocol.md §13.2).
func (b *blobSide) SealBlob(ctx context.Context, id store.OutboxID, created time.Time, msg io.Reader, expires time.Time) ([]byte, error) {
	b.sealMu.Lock()
	defer b.sealMu.Unlock()
	path := filepath.Join(b.dir, "out", strconv.FormatInt(int64(id), 10)+"-"+strconv.FormatInt(created.UnixMilli(), 10)+".ref")
	if enc, err := os.ReadFile(path); err == nil {
		if ref, err := blob.DecodeRef(enc); err == nil && b.st.Complete(ref.ID) {
			return enc, nil
		}
	}
	ref, err := b.st.Seal(msg, expires)
	if err != nil {
		return nil, err
	}
	ref.Holders = nil
	if b.served {
		h := b.n.net.Host()
		self := blob.Holder{Peer: h.ID(), Sender: true}
		for _, a := range h.Addrs() {
			if len(self.Addrs) == blob.MaxHolderAddrs {
				break
			}
			self.Addrs = append(self.Addrs, a)
		}
		ref.Holders = []blob.Holder{self}
	}
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
		pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		cl := b.cl
		if i < len(b.put) {
			cl = b.put[i]
		}
		err = cl.Put(pctx, blob.Route{Peer: ai.ID, Addrs: ai.Addrs}, ref.ID, time.Until(expires))
		cancel()
		if err != nil {
			b.n.log.Warn("blob: upload to a storage provider failed; the blob is served by this node only", "provider", ai.ID.ShortString())
			b.n.log.Debug("blob: upload failed", "err", err)
			continue
		}
		h := blob.Holder{Peer: ai.ID}
		h.Addrs = ai.Addrs[:min(len(ai.Addrs), blob.MaxHolderAddrs)]
		ref.Holders = append(ref.Holders, h)
	}
	if len(ref.Holders) == 0 {
		// A light client serves nothing: without a provider's copy no recipient could fetch it.
		b.st.Delete(ref.ID)
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

func (b *blobSide) pendingPath(key string) string {
	return filepath.Join(b.dir, "pending", key+".json")
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

func (b *blobSide) isContact(ctx context.Context, sender identity.Address) bool {
	for _, a := range []string{sender.String(), sender.Mail()} {
		if cs, err := b.n.mail.ContactsByAddress(ctx, a); err == nil && len(cs) > 0 {
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

// work advances one pending blob mail: dropped past its expiry, a notice for a stranger's mail above
// the limit without consent, else a fetch (with backoff after a failure) and the filing.
func (b *blobSide) work(ctx context.Context, p *pendingBlob) {
	now := time.Now()
	if !now.Before(p.Expires) {
		os.Remove(b.pendingPath(p.ReplayKey))
		return
	}
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
			b.save(p)
		}
		return
	}
	trusted, relays := b.providers()
	routes := blob.Plan(ref, contact, trusted, relays)
	if len(routes) == 0 {
		if !p.Noticed && b.notice(ctx, p, sender, true) == nil {
			p.Noticed = true
		}
		b.fail(p, errors.New("no private route to a holder: the sender is not a contact and no relay or provider is configured"))
		return
	}
	b.mu.Lock()
	b.fetching = p.ReplayKey
	b.mu.Unlock()
	fctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = b.cl.Fetch(fctx, ref, routes, p.Expires)
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

// fail records a failed attempt; the next one waits 5 s, doubling to 10 min.
func (b *blobSide) fail(p *pendingBlob, err error) {
	// Fetch errors name holders' addresses: only at debug level (HACKING.md, logs).
	b.n.log.Warn("blob: fetch failed; will retry (GET /api/blobs says why)")
	b.n.log.Debug("blob: fetch failed", "err", err)
	p.LastError = err.Error()
	b.save(p)
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
	b.st.Delete(ref.ID)
	b.mu.Lock()
	delete(b.next, p.ReplayKey)
	b.mu.Unlock()
	return nil
}

// notice files a short message in INBOX about a stranger's large mail that waits for consent.
// noRoute: the mail may be fetched but only privately, and this node has no relay or provider.
func (b *blobSide) notice(ctx context.Context, p *pendingBlob, sender identity.Address, noRoute bool) error {
	subject := headerValue(p.Header, "Subject")
	var sb strings.Builder
	sb.WriteString("From: TangleMail <postmaster@tangle>\r\n")
	sb.WriteString("To: " + b.n.id.Address().Mail() + "\r\n")
	sb.WriteString("Subject: Large mail waiting: " + sanitize(subject) + "\r\n")
	sb.WriteString("Date: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\n")
	sb.WriteString("X-Tanglemail-Blob-Pending: " + p.ReplayKey + "\r\n")
	sb.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
	fmt.Fprintf(&sb, "%s, who is not one of your contacts, sent you a mail of %.1f MiB", sender.Mail(), float64(p.Size)/(1<<20))
	if subject != "" {
		fmt.Fprintf(&sb, " (subject %q)", sanitize(subject))
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
	fmt.Fprintf(&sb, "It can be fetched until %s.\r\n", p.Expires.UTC().Format(time.RFC1123Z))
	mb, err := b.n.mail.MailboxByRole(ctx, store.RoleInbox)
	if err != nil {
		return err
	}
	_, err = b.n.mail.Append(ctx, store.NewMessage{MailboxID: mb.ID, Raw: []byte(sb.String()), Received: time.Now()})
	return err
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
	p, err := b.load(key)
	if err != nil {
		return err
	}
	p.Accepted = true
	if err := b.save(p); err != nil {
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
			Expires: p.Expires.UTC().Format(time.RFC3339), Error: p.LastError})
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
	return &api.BlobStatus{Blobs: count, UsedBytes: used, Pending: len(b.list()), Fetches: m.Fetches.Load(),
		ChunksOut: m.ChunksServed.Load(), ChunksIn: m.ChunksFetched.Load(), BadChunks: m.BadChunks.Load(),
		FetchErrors: m.FetchFailures.Load()}
}
