package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/light"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// LightFile is the light client's database in the data directory (cursors, subscriptions; mode 0600).
const LightFile = "light.db"

// Defaults of a new storage subscription (Config.StorageQuotaMiB, StorageRetentionDays).
const (
	DefaultStorageQuotaMiB      = 64
	DefaultStorageRetentionDays = 30
)

// fetchStoredTimeout bounds how long a full node's start waits for its storage providers.
const fetchStoredTimeout = 30 * time.Second

// lightSide is the node's storage subscriptions: a light client's only way to the Tangle, or a full
// node's cover for its downtime.
type lightSide struct {
	db      *light.DB
	clients light.Clients
	hosts   []*p2p.ClientHost
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// StartLight opens the data directory and starts a light client: the identity, the mailbox store and
// every front door (IMAP, SMTP submission, the API and web client, /metrics) run as on a full node, but
// there is no Tangle: blocks come from the storage providers of cfg.StorageProviders (live while
// connected, stored while away) and the blocks the outbox builds are published through them.
func StartLight(ctx context.Context, cfg Config) (_ *Node, err error) {
	if len(cfg.StorageProviders) == 0 {
		return nil, errors.New("a light client needs at least one storage provider (--provider <multiaddr with /p2p/<id>>)")
	}
	n, err := open(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.lightMode = true
	if err := n.openLight(ctx, nil); err != nil {
		return nil, err
	}
	n.netw = n.light.clients
	if err := n.startEngines(nil); err != nil {
		return nil, err
	}
	if err := n.startFrontDoors(); err != nil {
		return nil, err
	}
	n.runLight()
	if err := n.writeAPIInfo(); err != nil {
		return nil, err
	}
	return n, nil
}

// openLight opens light.db and makes one light.Client per configured provider. A full node (full non-nil)
// reaches them from its own p2p host; a light client gets a ClientHost with a fresh peer id per
// provider, so that no two providers see one peer id.
func (n *Node) openLight(ctx context.Context, full *p2p.Node) error {
	cfg := n.cfg
	if len(cfg.StorageProviders) == 0 {
		return nil
	}
	if n.id.TagBits() < 1 {
		return errors.New("storage subscriptions need an identity with tag bits ≥ 1 (the provider stores a route-tag prefix)")
	}
	var err error
	if n.light.db, err = light.OpenDB(filepath.Join(cfg.DataDir, LightFile)); err != nil {
		return err
	}
	for i, addr := range cfg.StorageProviders {
		ai, err := peer.AddrInfoFromString(addr)
		if err != nil {
			return fmt.Errorf("storage provider %q: %w (give a multiaddr ending in /p2p/<peer id>)", addr, err)
		}
		var opener wire.StreamOpener
		var connect func(ctx context.Context) error
		if full != nil {
			opener = full
			connect = func(ctx context.Context) error { return full.Connect(ctx, addr) }
		} else {
			h, err := p2p.NewClientHost(ctx)
			if err != nil {
				return fmt.Errorf("storage provider %s: %w", ai.ID, err)
			}
			n.light.hosts = append(n.light.hosts, h)
			opener = h
			connect = func(ctx context.Context) error { return h.Connect(ctx, *ai) }
		}
		grant := ""
		if i < len(cfg.StorageGrants) {
			grant = cfg.StorageGrants[i]
		}
		d := &providerDialer{n: n, name: ai.ID.String(), addr: addr, provider: ai.ID, opener: opener, connect: connect, grant: grant}
		c, err := light.NewClient(ctx, light.Config{
			Name: d.name, DB: n.light.db, Dial: d.dial, Filer: inboxFiler{n}, Params: cfg.Network,
			Notify: n.notice, Log: cfg.Log.With("sub", "light"),
			StatusInterval: cfg.StorageStatusInterval,
		})
		if err != nil {
			return err
		}
		n.light.clients = append(n.light.clients, c)
	}
	return nil
}

// fetchStored lets a full node file what its storage providers kept while it was off, before live
// blocks; a provider that does not answer in time is caught up with in the background.
func (n *Node) fetchStored(ctx context.Context) {
	if len(n.light.clients) == 0 {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, fetchStoredTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range n.light.clients {
		wg.Go(func() {
			if err := c.RunOnce(fctx); err != nil {
				n.log.Warn("fetching stored blocks from a storage provider failed; retrying in the background",
					"provider", c.Name(), "err", err)
			}
		})
	}
	wg.Wait()
}

// runLight runs every provider's client until Close.
func (n *Node) runLight() {
	if len(n.light.clients) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(n.bg)
	n.light.cancel = cancel
	for _, c := range n.light.clients {
		n.light.wg.Go(func() {
			if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				n.log.Error("storage provider client stopped", "provider", c.Name(), "err", err)
			}
		})
	}
}

// closeLight stops the clients and closes their hosts and light.db.
func (n *Node) closeLight() []error {
	var errs []error
	if n.light.cancel != nil {
		n.light.cancel()
	}
	n.light.wg.Wait()
	for _, h := range n.light.hosts {
		errs = append(errs, h.Close())
	}
	if n.light.db != nil {
		errs = append(errs, n.light.db.Close())
	}
	return errs
}

// LightClients are the node's storage provider clients (empty without subscriptions).
func (n *Node) LightClients() []*light.Client { return n.light.clients }

// IsLight reports whether the node is a light client (StartLight).
func (n *Node) IsLight() bool { return n.lightMode }

// inboxFiler hands a batch of stored blocks to the inbox (light.Filer).
type inboxFiler struct{ n *Node }

func (f inboxFiler) FileBatch(ctx context.Context, bs []*tangle.Block) error {
	_, err := f.n.inbox.ProcessBatch(ctx, bs)
	return err
}

// notice files a notice from the node itself in the INBOX (the quota notices of package light).
func (n *Node) notice(ctx context.Context, subject, body string) error {
	mb, err := n.mail.MailboxByRole(ctx, store.RoleInbox)
	if err != nil {
		return err
	}
	now := time.Now()
	var id [12]byte
	rand.Read(id[:])
	raw := "From: tanglemail <" + outbox.Postmaster + ">\r\nTo: " + n.id.Address().Mail() +
		"\r\nSubject: " + subject + "\r\nDate: " + now.Format(time.RFC1123Z) +
		fmt.Sprintf("\r\nMessage-ID: <notice-%x@tangle>", id) +
		"\r\nAuto-Submitted: auto-generated\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
	_, err = n.mail.Append(ctx, store.NewMessage{MailboxID: mb.ID, Raw: []byte(raw), Received: now})
	return err
}

// providerDialer connects to one storage provider, creates the subscription on first use (with the
// operator's grant) and authenticates each session with the subscription's own key.
type providerDialer struct {
	n        *Node
	name     string
	addr     string
	provider peer.ID
	opener   wire.StreamOpener
	connect  func(ctx context.Context) error
	grant    string
	mu       sync.Mutex // one subscription creation at a time
}

func (d *providerDialer) dial(ctx context.Context) (light.Provider, error) {
	if err := d.connect(ctx); err != nil {
		return nil, fmt.Errorf("connect to storage provider %s: %w", d.name, err)
	}
	s, err := wire.Dial(ctx, d.opener, d.provider, d.n.cfg.Network.ID)
	if err != nil {
		return nil, err
	}
	id, key, err := d.subscription(ctx, s)
	if err == nil {
		err = s.Auth(ctx, id, key)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return wireProvider{s: s, name: d.name}, nil
}

// subscription returns the kept subscription, or creates one: a fresh Ed25519 key (never the
// identity's), the identity's route-tag prefix (protocol.md §4, §12).
func (d *providerDialer) subscription(ctx context.Context, s *wire.Session) (wire.SubID, ed25519.PrivateKey, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	db := d.n.light.db
	id, seed, ok, err := db.Subscription(ctx, d.name)
	if err != nil {
		return id, nil, err
	}
	if ok {
		return id, ed25519.NewKeyFromSeed(seed), nil
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return id, nil, err
	}
	cfg := d.n.cfg
	tk := d.n.id.TagKey()
	var tag tangle.Tag
	copy(tag[:], tk[:])
	req := wire.CreateRequest{
		Prefix:        wire.PrefixOf(tag, uint8(min(d.n.id.TagBits(), wire.MaxPrefixBits))),
		RetentionDays: uint32(cmpOr(cfg.StorageRetentionDays, DefaultStorageRetentionDays)),
		QuotaMiB:      uint32(cmpOr(cfg.StorageQuotaMiB, DefaultStorageQuotaMiB)),
		Key:           pub,
		Grant:         d.grant,
	}
	sid, state, err := s.Create(ctx, req)
	if err != nil {
		return id, nil, fmt.Errorf("create a subscription with storage provider %s: %w", d.name, err)
	}
	if err := db.SaveSubscription(ctx, d.name, d.addr, sid, key.Seed()); err != nil {
		return id, nil, err
	}
	d.n.log.Info("storage subscription created", "provider", d.name, "state", state.String())
	return sid, key, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// wireProvider adapts a wire.Session to light.Provider.
type wireProvider struct {
	s    *wire.Session
	name string
}

func (w wireProvider) Fetch(ctx context.Context, after light.Cursor, maxCount, maxBytes int) ([]light.Pushed, light.Cursor, bool, error) {
	ps, next, more, err := w.s.Fetch(ctx, wire.Cursor(after), maxCount, maxBytes)
	out := make([]light.Pushed, len(ps))
	for i, p := range ps {
		out[i] = light.Pushed{Cursor: light.Cursor(p.Cursor), Block: p.Block}
	}
	return out, light.Cursor(next), more, err
}

func (w wireProvider) Release(ctx context.Context, upTo light.Cursor) error {
	return w.s.Release(ctx, wire.Cursor(upTo))
}

func (w wireProvider) Watch(ctx context.Context) (<-chan light.Pushed, error) {
	in, err := w.s.Watch(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan light.Pushed, 64)
	go func() {
		defer close(out)
		for p := range in {
			select {
			case out <- light.Pushed{Cursor: light.Cursor(p.Cursor), Block: p.Block}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Publish maps the provider's refusals to *light.RefusedError; an internal error or a broken stream
// stays a plain error (the outbox retries).
func (w wireProvider) Publish(ctx context.Context, raw []byte) error {
	err := w.s.Publish(ctx, raw)
	var we *wire.Error
	if errors.As(err, &we) && we.Code != wire.CodeInternal {
		return &light.RefusedError{Provider: w.name, Code: we.Code.String(), Msg: we.Msg}
	}
	return err
}

func (w wireProvider) Tips(ctx context.Context, shard uint32, n int) ([]tangle.ID, error) {
	return w.s.Tips(ctx, shard, min(max(n, 1), wire.MaxTips))
}

func (w wireProvider) Status(ctx context.Context) (light.Usage, error) {
	st, err := w.s.Status(ctx)
	if err != nil {
		return light.Usage{}, err
	}
	return light.Usage{State: st.State.String(), UsedBytes: st.UsedBytes, QuotaBytes: st.QuotaBytes,
		Blocks: st.Blocks, Expires: st.Expires}, nil
}

func (w wireProvider) Close() error { return w.s.Close() }

// lightStatus is the storage subscriptions as GET /api/status shows them.
func (n *Node) lightStatus() []api.LightProvider {
	var out []api.LightProvider
	for _, c := range n.light.clients {
		st := c.Status()
		lp := api.LightProvider{
			Provider: st.Provider, Connected: st.Connected, Cursor: uint64(st.Cursor), State: st.Usage.State,
			UsedBytes: st.Usage.UsedBytes, QuotaBytes: st.Usage.QuotaBytes, QuotaPercent: st.Usage.Percent(),
			LastError: st.LastError, Fetched: st.Stats.Fetched, Pushed: st.Stats.Pushed, Filed: st.Stats.Filed,
			Refused: st.Stats.Refused,
		}
		if !st.LastSync.IsZero() {
			lp.LastSync = st.LastSync.UTC().Format(time.RFC3339)
		}
		if !st.Usage.Expires.IsZero() {
			lp.Expires = st.Usage.Expires.UTC().Format(time.RFC3339)
		}
		out = append(out, lp)
	}
	return out
}
