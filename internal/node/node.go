// Package node wires the layers into one running tanglemail node: the identity and password in the data
// directory, the DAG block store, the peer-to-peer network, and the local API. It owns the node's
// lifecycle (start, background maintenance, clean shutdown) and its status.
//
// Implementation notes:
//   - Start opens everything in dependency order (identity → store → network → API) and Close closes in
//     reverse, so the store is never closed while the network may still write to it.
//   - StartLight (light.go) runs a light client with the same steps minus the Tangle: open (identity,
//     password, mailbox store, TLS), startEngines and startFrontDoors are shared, and the engines reach
//     the Tangle through the small network interface: the p2p layer and block store on a full node,
//     the storage providers (light.Clients) on a light client. A full node with storage subscriptions
//     files what its providers kept (fetchStored) before it registers for live blocks.
//   - With Config.WalletRPC, startFrontDoors (full node and light client alike) starts a
//     payment.BalanceWatcher on the data directory's wallet address (wallet.go); the status shows its
//     last reading and never waits for the chain, POST /api/wallet/refresh reads now. It is closed
//     after the background work has stopped.
//   - The API listener is bound before api.json is written, and api.json is removed on Close, so a CLI
//     that finds api.json finds a node that is (or was until a crash) listening.
//   - Client-facing listeners are loopback by default. IMAP and SMTP submission may listen elsewhere
//     (a client must use STARTTLS before it logs in); the API only on loopback (it speaks plain HTTP).
package node

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/chat"
	"github.com/tanglemail/tanglemail/internal/e2e"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/imapserver"
	"github.com/tanglemail/tanglemail/internal/inbox"
	"github.com/tanglemail/tanglemail/internal/loginpenalty"
	"github.com/tanglemail/tanglemail/internal/outbox"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/submission"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
	"github.com/tanglemail/tanglemail/internal/version"
	"github.com/tanglemail/tanglemail/internal/web"
)

// Config says how to run a node. The zero value is not usable: start from DefaultConfig.
type Config struct {
	DataDir   string
	Network   tangle.Params
	P2PListen []string // multiaddrs
	Bootstrap []string // multiaddrs with /p2p/<id>
	MDNS      bool
	DHT       bool
	// RelayService runs the circuit relay v2 service for nodes behind NAT (a public node; p2p
	// Config.RelayService). Relays are public nodes (multiaddrs with /p2p/<id>) to hold a relay
	// reservation on while this node is not publicly reachable (p2p Config.Relays).
	RelayService bool
	Relays       []string
	APIListen    string // host:port of the local JSON API
	SMTPListen   string // host:port of SMTP submission; non-loopback clients must use STARTTLS
	IMAPListen   string // host:port of IMAP; non-loopback clients must use STARTTLS
	Passphrase   []byte // of the identity; empty: unencrypted
	TagBits      int    // for a new identity
	Log          *slog.Logger
	// PruneInterval is how often expired blocks are deleted (default 1 min).
	PruneInterval time.Duration
	// LoginPenalty delays logins after failed ones, shared by IMAP, SMTP and the HTTP API; nil: one
	// with the defaults (tests inject one on a fake clock).
	LoginPenalty *loginpenalty.Penalty
	// BlockBudget bounds the block store's relayed blocks, in bytes of block encodings (dag.WithBudget;
	// default dag.DefaultBudget, 4 GiB; negative: none). Blocks not yet trial-opened and the node's own
	// published blocks awaiting their receipts are held apart from it (see docs/threat-model.md).
	BlockBudget int64
	// Storage runs a storage provider (and with Public, serves light clients): internal/node/storage.go.
	Storage StorageConfig
	// ReceiptDelayMean is the mean random delay of delivery receipts, so that relays cannot link a
	// receipt to the mail it answers by timing (outbox.Config.ReceiptDelayMean); zero: none.
	ReceiptDelayMean time.Duration

	// StorageProviders are storage providers (multiaddrs ending in /p2p/<peer id>) that keep this
	// identity's blocks while it is away (protocol.md §12): a light client's only way to the Tangle,
	// a full node's cover for downtime beyond the TTL. StorageGrants are the operators' one-time
	// tokens, by index, used when a subscription is first created.
	StorageProviders []string
	StorageGrants    []string
	// StorageQuotaMiB and StorageRetentionDays are asked for a new subscription (defaults 64 MiB, 30 d).
	StorageQuotaMiB, StorageRetentionDays int
	// StorageStatusInterval is how often a subscription's usage is read and stored blocks fetched even
	// without pushes (default 1 min).
	StorageStatusInterval time.Duration
	// blobClock is the blob fetcher's clock (expiry of pending blob mail; nil: time.Now); with
	// blobResetAfter > 0 the blob server ends each stream after that many chunks (a broken link). Tests.
	blobClock      func() time.Time
	blobResetAfter int

	// BlobAutoContact and BlobAutoStranger are the largest blob mail (protocol.md §13.7) fetched
	// without asking, from a contact and from anyone else, in bytes (flags --blob-auto-mib,
	// --blob-auto-stranger-mib); larger mail gets a notice in INBOX and waits for POST
	// /api/blobs/{key}/accept. Zero: DefaultBlobAutoContact, DefaultBlobAutoStranger; negative: none.
	BlobAutoContact, BlobAutoStranger int64
	// WalletRPC are the payment chain's JSON-RPC endpoints (--payment-rpc) on which the node watches
	// the balance of the data directory's wallet (wallet.go), by its address only; WalletChainID is
	// the chain they must serve, WalletInterval how often the balance is read (default
	// payment.DefaultBalanceInterval). No endpoint: no watcher, and the status says the balance is
	// unknown.
	WalletRPC      []string
	WalletChainID  uint64
	WalletInterval time.Duration
	// RelayGateway, if set, is the gateway that sends this user's mail to Internet recipients (SMTP
	// submission accepts them; protocol.md §15.4).
	RelayGateway identity.Address
	// InternetAddress is the address the user claimed on RelayGateway (InternetAddressFile). With
	// both set, the node encrypts Internet mail end to end with OpenPGP where it can (e2e.go,
	// protocol.md §16.5); its OpenPGP key is made on first use under Passphrase.
	InternetAddress string
	// E2ELookup finds Internet recipients' OpenPGP keys; nil: their Web Key Directory (wkd.Client).
	// Tests inject a stub.
	E2ELookup e2e.KeyLookup
	// Gateway runs the inbound gateway to Internet mail (gateway.go, internal/gateway).
	Gateway      GatewayConfig
	receiptClock outbox.ReceiptClock // times the outbox's receipts; nil: real time (tests inject one)
}

// Receipt delays: DefaultReceiptDelayMean on a user's node, DevnetReceiptDelayMean on the devnet (whose
// nodes all run on one machine, so there is nobody to hide from, and whose tests wait for receipts).
const (
	DefaultReceiptDelayMean = time.Minute
	DevnetReceiptDelayMean  = 200 * time.Millisecond
)

// DefaultConfig is the configuration of a user's node on the main network.
func DefaultConfig(dataDir string) Config {
	return Config{
		DataDir:       dataDir,
		Network:       tangle.MainNet,
		P2PListen:     []string{"/ip4/0.0.0.0/tcp/4580", "/ip4/0.0.0.0/udp/4580/quic-v1"},
		MDNS:          true,
		DHT:           true,
		APIListen:     "127.0.0.1:4581",
		SMTPListen:    "127.0.0.1:1587",
		IMAPListen:    "127.0.0.1:1143",
		TagBits:       8,
		PruneInterval: time.Minute,
		BlockBudget:   dag.DefaultBudget,

		ReceiptDelayMean: DefaultReceiptDelayMean,
	}
}

// DevnetConfig is DefaultConfig for a node of the development network that stays on this machine: it
// listens and dials on 127.0.0.1 only, on ports the system chooses, with mDNS and the DHT off. The
// devnet command and the tests start their nodes with it.
func DevnetConfig(dataDir string) Config {
	cfg := DefaultConfig(dataDir)
	cfg.Network = tangle.DevNet
	cfg.P2PListen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.MDNS, cfg.DHT = false, false
	cfg.APIListen, cfg.SMTPListen, cfg.IMAPListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.ReceiptDelayMean = DevnetReceiptDelayMean
	return cfg
}

// Node is a running node.
type Node struct {
	cfg      Config
	log      *slog.Logger
	id       *identity.Identity
	created  bool
	password string
	store    *dag.Store
	net      *p2p.Node
	mail     *store.Store
	outbox   *outbox.Outbox
	inbox    *inbox.Inbox
	chat     *chat.Service
	smtp     *submission.Server
	activity *frontActivity // the front doors' last client activity; the outbox's PoW yields to it
	smtpLn   net.Listener
	imap     *imapserver.Server
	imapLn   net.Listener
	tls      *tls.Config
	api      *web.Server
	apiLn    net.Listener
	provider *storageSide            // nil unless Config.Storage.Enabled (storage.go)
	wallet   *payment.BalanceWatcher // nil unless Config.WalletRPC (wallet.go)
	blobs    *blobSide               // nil on a light client (blob.go)
	gw       *gatewaySide            // nil unless Config.Gateway.Enabled (gateway.go)
	e2e      *e2e.E2E                // nil unless Config.RelayGateway and InternetAddress (e2e.go)
	started  time.Time
	metrics  *prometheus.Registry // GET /metrics (metrics.go)

	holds     *holds
	lightMode bool
	netw      network // how the engines reach the Tangle: the p2p layer, or a light client's providers
	light     lightSide

	bg         context.Context // background work; cancelled by Close
	unlock     func()
	unregister func()
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	once       sync.Once
}

// Start opens the data directory and starts a full node. It returns once the node is reachable by peers
// and by the API; Close stops it.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	n, err := open(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	cfg = n.cfg
	n.store, err = dag.Open(filepath.Join(cfg.DataDir, BlocksFile), cfg.Network,
		dag.WithBudget(cfg.BlockBudget), dag.WithHoldNew(dag.HoldUnopened))
	if err != nil {
		return nil, fmt.Errorf("open block store: %w", err)
	}
	pcfg := p2p.Config{
		DataDir:     cfg.DataDir,
		ListenAddrs: cfg.P2PListen,
		Bootstrap:   cfg.Bootstrap,
		MDNS:        cfg.MDNS,
		DHT:         cfg.DHT,
		Shards:      shardsFor(n.id, cfg.Network.ShardBits),

		RelayService: cfg.RelayService,
		Relays:       cfg.Relays,
	}
	n.net, err = p2p.New(ctx, pcfg, n.store, cfg.Network, p2p.WithLogger(cfg.Log.With("sub", "p2p")))
	if err != nil {
		return nil, fmt.Errorf("start network: %w", err)
	}
	n.netw = fullNetwork{n.net, n.store, n.holds}
	if err := n.openBlobs(); err != nil {
		return nil, err
	}
	if err := n.openLight(ctx, n.net); err != nil {
		return nil, err
	}
	if err := n.startEngines(n.holds.handled); err != nil {
		return nil, err
	}
	// A full node with storage subscriptions covers its downtime beyond the TTL: what its providers
	// stored while it was off is filed before the blocks that arrive live.
	n.fetchStored(ctx)
	n.unregister = n.net.OnBlock(n.inbox.HandleBlock)
	if err := n.startFrontDoors(); err != nil {
		return nil, err
	}
	if err := n.startGateway(); err != nil {
		return nil, err
	}
	n.goBackground("pruning", func() error { n.pruneLoop(n.bg); return nil })
	n.goBackground("block holds", func() error { n.holds.run(n.bg); return nil })
	n.goBackground("blob fetches", func() error { n.blobs.run(n.bg); return nil })
	n.goBackground("rescan", func() error { return ignoreCanceled(n.rescan(n.bg)) })
	n.runLight()
	if err := n.writeAPIInfo(); err != nil {
		return nil, err
	}
	return n, nil
}

// open checks cfg and opens what every kind of node has: the data directory's lock, the identity and
// password, the mailbox store and the TLS certificate.
func open(cfg Config) (_ *Node, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = time.Minute
	}
	if cfg.BlockBudget == 0 {
		cfg.BlockBudget = dag.DefaultBudget
	}
	switch {
	case cfg.BlobAutoContact == 0:
		cfg.BlobAutoContact = DefaultBlobAutoContact
	case cfg.BlobAutoContact < 0:
		cfg.BlobAutoContact = 0
	}
	switch {
	case cfg.BlobAutoStranger == 0:
		cfg.BlobAutoStranger = DefaultBlobAutoStranger
	case cfg.BlobAutoStranger < 0:
		cfg.BlobAutoStranger = 0
	}
	if err := checkLoopback(cfg.APIListen); err != nil {
		return nil, err
	}
	if err := EnsureDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Log, started: time.Now()}
	n.holds = newHolds(n)
	n.bg, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.unlock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	n.id, n.created, err = LoadOrCreateIdentity(cfg.DataDir, cfg.Passphrase, cfg.TagBits)
	if err != nil {
		return nil, err
	}
	n.password, err = LoadOrCreatePassword(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var mailOpts []store.Option
	if cfg.Gateway.Enabled {
		// relay messages pass through INBOX on their way to the relay: forget them on disk (gatewayrelay.go)
		mailOpts = append(mailOpts, store.WithSecureDelete())
	}
	n.mail, err = store.Open(filepath.Join(cfg.DataDir, MailFile), mailOpts...)
	if err != nil {
		return nil, fmt.Errorf("open mailbox store: %w", err)
	}
	if n.tls, err = LoadOrCreateTLS(cfg.DataDir); err != nil {
		return nil, err
	}
	return n, nil
}

// startEngines makes the outbox, chat and inbox, which reach the Tangle through n.netw. handled, if
// set, hears of every block the inbox is done with.
func (n *Node) startEngines(handled func(*tangle.Block, inbox.Outcome)) (err error) {
	cfg := n.cfg
	var sealer outbox.BlobSealer
	var blobs inbox.BlobHandler
	if n.blobs != nil {
		sealer, blobs = n.blobs, n.blobs
	}
	if err := n.openE2E(); err != nil {
		return err
	}
	var prepare func(context.Context, []string, []byte) (outbox.Prepared, error)
	var filter func(context.Context, identity.Address, []byte) []byte
	if n.e2e != nil {
		prepare, filter = n.prepareRelay, n.inboundFilter
	}
	n.outbox, err = outbox.New(outbox.Config{
		Blobs:           sealer,
		PrepareRelay:    prepare,
		PrepareRelayMax: e2eMaxRelay,
		Store:           n.mail,
		Identity:        n.id,
		Params:          cfg.Network,
		Publisher:       n.netw,
		Tips:            n.netw,
		Logger:          cfg.Log.With("sub", "outbox"),
		Yield:           n.frontActivity().busy,

		ReceiptDelayMean: cfg.ReceiptDelayMean,
		ReceiptClock:     cfg.receiptClock,
	})
	if err != nil {
		return err
	}
	n.chat, err = chat.New(chat.Config{
		Store:    n.mail,
		Identity: n.id,
		Params:   cfg.Network,
		Notes:    n.outbox,
		Logger:   cfg.Log.With("sub", "chat"),
	})
	if err != nil {
		return err
	}
	n.inbox, err = inbox.New(inbox.Config{
		Store:      n.mail,
		Identities: []*identity.Identity{n.id},
		Params:     cfg.Network,
		Receipts:   n.outbox,
		OnReceipt:  n.outbox,
		Chat:       n.chat,
		Blobs:      blobs,
		Filter:     filter,
		FilterBlob: n.inboundFilterBlob,
		Handled:    handled,
		Logger:     cfg.Log.With("sub", "inbox"),
	})
	return err
}

// startFrontDoors binds SMTP submission, IMAP and the API (with /metrics) and runs them and the
// engines in the background. A full node and a light client share it unchanged.
func (n *Node) startFrontDoors() (err error) {
	cfg := n.cfg
	n.smtpLn, err = net.Listen("tcp", cfg.SMTPListen)
	if err != nil {
		return fmt.Errorf("SMTP listen on %s: %w (choose another --smtp-listen)", cfg.SMTPListen, err)
	}
	// One failed-login penalty for the three front doors: a source that guesses on one waits on all.
	penalty := cfg.LoginPenalty
	if penalty == nil {
		penalty = loginpenalty.New(loginpenalty.Options{})
	}
	n.smtp = submission.New(submission.StoreBackend{Store: n.mail}, submission.Options{
		Address:      n.id.Address(),
		Password:     n.password,
		Penalty:      penalty,
		TLSConfig:    n.tls,
		Logger:       cfg.Log.With("sub", "smtp"),
		SpoolDir:     filepath.Join(cfg.DataDir, SpoolDir),
		RelayGateway: cfg.RelayGateway,
	})
	n.imapLn, err = net.Listen("tcp", cfg.IMAPListen)
	if err != nil {
		return fmt.Errorf("IMAP listen on %s: %w (choose another --imap-listen)", cfg.IMAPListen, err)
	}
	n.imap = imapserver.New(n.mail, imapserver.Options{
		Username:  n.id.Address().Mail(),
		Password:  n.password,
		Penalty:   penalty,
		TLSConfig: n.tls,
		Logger:    cfg.Log.With("sub", "imap"),
	})
	n.apiLn, err = net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return fmt.Errorf("API listen on %s: %w (is another node running? choose another --api-listen)", cfg.APIListen, err)
	}
	n.metrics = n.newRegistry()
	if err = n.startStorage(); err != nil {
		return // the named results: nil node (or none), err
	}
	if err = n.startWallet(); err != nil {
		return
	}
	n.api = web.New(web.Config{
		Backend:      n,
		Store:        n.mail,
		Address:      n.id.Address().Mail(),
		Chat:         n.chat,
		RelayGateway: relayGatewayMail(cfg.RelayGateway),
		Invites:      n,
		Storage:      n,
		Blobs:        n,
		Wallet:       n,
		Password:     n.password,
		Penalty:      penalty,
		Log:          cfg.Log.With("sub", "api"),
	})
	bg := n.bg
	n.goBackground("API server", func() error { return n.api.Serve(n.apiLn) })
	act := n.frontActivity()
	n.goBackground("SMTP server", func() error { return n.smtp.Serve(act.listener(n.smtpLn)) })
	n.goBackground("IMAP server", func() error { return ignoreClosed(n.imap.Serve(act.listener(n.imapLn))) })
	n.goBackground("outbox", func() error { return ignoreCanceled(n.outbox.Run(bg)) })
	n.goBackground("inbox", func() error { return ignoreCanceled(n.inbox.Run(bg)) })
	n.goBackground("chat", func() error { return ignoreCanceled(n.chat.Run(bg)) })
	return nil
}

// frontActivity returns the node's front-door activity record, made on first use (engines and front
// doors start from one goroutine).
func (n *Node) frontActivity() *frontActivity {
	if n.activity == nil {
		n.activity = newFrontActivity()
	}
	return n.activity
}

// writeAPIInfo writes api.json, once the API listens.
func (n *Node) writeAPIInfo() error {
	info, _ := json.Marshal(APIInfo{URL: "http://" + n.apiLn.Addr().String(), PID: os.Getpid()})
	if err := atomicfile.Write(filepath.Join(n.cfg.DataDir, APIFile), info, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", APIFile, err)
	}
	return nil
}

// goBackground runs f until Close; an error it returns is logged.
func (n *Node) goBackground(name string, f func() error) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := f(); err != nil {
			n.log.Error(name+" stopped", "err", err)
		}
	}()
}

func ignoreClosed(err error) error {
	if errors.Is(err, imapserver.ErrServerClosed) {
		return nil
	}
	return err
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// rescan hands every stored, unexpired block of the node's shards to the inbox once at start. Blocks
// that p2p stored before the inbox was registered (catch-up starts with the network), or that were
// stored but not yet filed when the node last stopped, are filed now; the inbox files each envelope at
// most once (replay keys), so blocks it has already seen cost only a tag check or a trial-open.
func (n *Node) rescan(ctx context.Context) error {
	since := time.Now().Add(-time.Duration(tangle.MaxTTL) * time.Second)
	count := 0
	for _, shard := range shardsFor(n.id, n.cfg.Network.ShardBits) {
		var after dag.Cursor
		for {
			page, err := n.store.IDsSince(shard, since, after, 1000)
			if err != nil {
				return fmt.Errorf("rescan: %w", err)
			}
			for _, c := range page {
				b, err := n.store.Get(c.ID)
				if errors.Is(err, dag.ErrNotFound) {
					continue // pruned meanwhile
				}
				if err != nil {
					return fmt.Errorf("rescan: %w", err)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				n.inbox.HandleBlock(b)
				count++
			}
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1]
		}
	}
	n.log.Debug("rescanned stored blocks for this node's identities", "blocks", count)
	return nil
}

// network is how the engines reach the Tangle (outbox.Publisher and outbox.Tips): a full node's p2p
// layer and block store, or a light client's storage providers (light.Clients).
type network interface {
	Publish(ctx context.Context, b *tangle.Block) error
	PeerCount() int
	SelectParents(shard uint32, n int) []tangle.ID
}

// fullNetwork is a full node's network: gossip through p2p, tips from the block store. Its blocks
// are held as the node's own from the moment they are published (holds).
type fullNetwork struct {
	net   *p2p.Node
	store *dag.Store
	holds *holds
}

func (f fullNetwork) Publish(ctx context.Context, b *tangle.Block) error {
	id := b.ID()
	f.holds.publishing(id)
	err := f.net.Publish(ctx, b)
	f.holds.published(id, err)
	return err
}
func (f fullNetwork) PeerCount() int { return f.net.PeerCount() }
func (f fullNetwork) SelectParents(shard uint32, n int) []tangle.ID {
	return f.store.SelectParents(shard, n)
}

// shardsFor lists the shards that can carry blocks for id (protocol.md §4): one when k ≥ s, otherwise
// the 2^(s−k) shards that agree with the tag key on its first k bits.
func shardsFor(id *identity.Identity, shardBits int) []uint32 {
	if shardBits <= 0 {
		return []uint32{0}
	}
	key := id.TagKey()
	var tag tangle.Tag
	copy(tag[:], key[:8])
	prefix := tag.Shard(shardBits)
	k := id.TagBits()
	if k >= shardBits {
		return []uint32{prefix}
	}
	free := shardBits - k
	base := prefix >> free << free
	out := make([]uint32, 0, 1<<free)
	for i := range uint32(1) << free {
		out = append(out, base|i)
	}
	return out
}

func (n *Node) pruneLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if k, err := n.store.Prune(now); err != nil {
				n.log.Warn("pruning expired blocks failed; will retry", "err", err)
			} else if k > 0 {
				n.log.Debug("pruned expired blocks", "count", k)
			}
		}
	}
}

// Identity is the node's identity.
func (n *Node) Identity() *identity.Identity { return n.id }

// CreatedIdentity reports whether Start created the identity (first start).
func (n *Node) CreatedIdentity() bool { return n.created }

// Password is the generated password of the API and the mail clients.
func (n *Node) Password() string { return n.password }

// APIAddr is where the API listens.
func (n *Node) APIAddr() string { return n.apiLn.Addr().String() }

// Network is the node's p2p layer.
func (n *Node) Network() *p2p.Node { return n.net }

// Blocks is the node's block store (the Tangle's blocks, package dag).
func (n *Node) Blocks() *dag.Store { return n.store }

// Mailboxes is the node's mailbox store (the account's mailboxes, outbox queue and contacts).
func (n *Node) Mailboxes() *store.Store { return n.mail }

// Chat is the node's chat service.
func (n *Node) Chat() *chat.Service { return n.chat }

// IMAPAddr is where IMAP listens.
func (n *Node) IMAPAddr() string { return n.imapLn.Addr().String() }

// SMTPAddr is where SMTP submission listens.
func (n *Node) SMTPAddr() string { return n.smtpLn.Addr().String() }

// Status returns the node's status (GET /api/status); it implements web.Backend.
func (n *Node) Status() api.Status {
	p := n.outbox.Progress()
	st := n.outbox.Stats()
	mode, p2pStatus := "full", p2p.Status{}
	if n.net != nil {
		p2pStatus = n.net.Status()
	}
	if n.lightMode {
		mode = "light"
	}
	return api.Status{
		Address: n.id.Address().Mail(),
		Network: n.cfg.Network.Name,
		Mode:    mode,
		Storage: n.lightStatus(),
		Version: version.Get(),
		Uptime:  time.Since(n.started).Round(time.Second).String(),
		API:     "http://" + n.APIAddr(),
		P2P:     p2pStatus,
		Outbox: api.OutboxStatus{
			WaitingForPeers: p.WaitingForPeers,
			Jobs:            progressJobs(p.Jobs),
			QueuedReceipts:  p.QueuedReceipts,
			Stats: api.OutboxStats{Sealed: st.Sealed, Published: st.Published, Republished: st.Republished,
				PublishErrors: st.PublishErrors, Delivered: st.Delivered, Delayed: st.Delayed, Failed: st.Failed, ReceiptsSent: st.ReceiptsSent,
				ReceiptKeysSent: st.ReceiptKeysSent, ReceiptsDropped: st.ReceiptsDropped, ReceiptsIgnored: st.ReceiptsIgnored,
				NotesSent: st.NotesSent},
		},
		Blobs:  n.blobStatus(),
		Wallet: n.walletStatus(),
	}
}

// ClientSettings says where mail clients reach the node; it implements web.Backend.
func (n *Node) ClientSettings() web.ClientSettings {
	return web.ClientSettings{Address: n.id.Address().Mail(), IMAP: n.IMAPAddr(), SMTP: n.SMTPAddr()}
}

// Peers lists connected peers; it implements web.Backend.
func (n *Node) Peers() []api.Peer {
	if n.net == nil {
		return []api.Peer{}
	}
	ps := n.net.Status().Peers
	if ps == nil {
		ps = []api.Peer{}
	}
	return ps
}

// Progress is the outbox's proof-of-work progress as the API's progress event shows it; it implements
// web.Backend.
func (n *Node) Progress() *api.Progress {
	p := n.outbox.Progress()
	return &api.Progress{WaitingForPeers: p.WaitingForPeers, Jobs: progressJobs(p.Jobs)}
}

// progressJobs is the outbox's jobs as the API shows them, sorted (outbox item, recipient, kind,
// block), so that equal states marshal equally.
func progressJobs(jobs []outbox.Job) []api.ProgressJob {
	out := make([]api.ProgressJob, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, api.ProgressJob{OutboxID: int64(j.OutboxID), Recipient: j.Rcpt, Kind: j.Kind.String(), Block: j.Block,
			Blocks: j.Blocks, Done: j.Done, Expected: j.Expected, Started: j.Started, Finished: j.Finished})
	}
	slices.SortFunc(out, func(a, b api.ProgressJob) int {
		return cmp.Or(cmp.Compare(a.OutboxID, b.OutboxID), cmp.Compare(a.Recipient, b.Recipient), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Block, b.Block))
	})
	return out
}

// Close stops the node: API, background work, network, store, in that order. It is safe to call more
// than once.
func (n *Node) Close() error {
	var errs []error
	n.once.Do(func() {
		if n.apiLn != nil {
			os.Remove(filepath.Join(n.cfg.DataDir, APIFile))
		}
		if n.api != nil {
			errs = append(errs, n.api.Close())
		} else if n.apiLn != nil {
			errs = append(errs, n.apiLn.Close())
		}
		if n.smtp != nil {
			errs = append(errs, n.smtp.Close())
		} else if n.smtpLn != nil {
			errs = append(errs, n.smtpLn.Close())
		}
		if n.imap != nil {
			errs = append(errs, n.imap.Close())
		} else if n.imapLn != nil {
			errs = append(errs, n.imapLn.Close())
		}
		errs = append(errs, n.closeGateway())
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.wallet != nil {
			n.wallet.Close()
		}
		errs = append(errs, n.closeRelay())
		errs = append(errs, n.closeLight()...)
		if n.unregister != nil {
			n.unregister()
		}
		errs = append(errs, n.closeStorage())
		if n.inbox != nil {
			errs = append(errs, n.inbox.Close())
		}
		errs = append(errs, n.closeE2E()) // after the inbox (its Filter) and the outbox (PrepareRelay)
		if n.net != nil {
			errs = append(errs, n.net.Close())
		}
		if n.blobs != nil {
			errs = append(errs, n.blobs.st.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		if n.mail != nil {
			errs = append(errs, n.mail.Close())
		}
		if n.unlock != nil {
			n.unlock()
		}
	})
	return errors.Join(errs...)
}

// checkLoopback refuses a client-facing listen address that is not loopback: such an address would
// need TLS, which the API does not serve yet.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen address %q is not loopback: the API serves plain HTTP, so it listens on 127.0.0.1 or ::1 only", hostport)
	}
	return nil
}

// DevnetOptions adjust StartDevnet.
type DevnetOptions struct {
	// Configure, if set, adjusts node i's configuration (its logger, say) before it starts.
	Configure func(i int, cfg *Config)
	// Started, if set, is called after node i has started (progress for a user).
	Started func(i int, n *Node)
	// PeerTimeout bounds the wait for every node to see all the others; default 30 s.
	PeerTimeout time.Duration
}

// StartDevnet starts a node of DevnetConfig in each data directory, each bootstrapped to all earlier
// ones, and returns once every node sees all the others. On an error, or when ctx ends first, the
// nodes it started are closed. The devnet command and the end-to-end tests start their networks with it.
func StartDevnet(ctx context.Context, dirs []string, opts DevnetOptions) (_ []*Node, err error) {
	var nodes []*Node
	defer func() {
		if err != nil {
			for i := len(nodes) - 1; i >= 0; i-- {
				nodes[i].Close()
			}
		}
	}()
	var bootstrap []string
	for i, dir := range dirs {
		cfg := DevnetConfig(dir)
		cfg.Bootstrap = slices.Clone(bootstrap)
		if opts.Configure != nil {
			opts.Configure(i, &cfg)
		}
		n, err := Start(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("start node %d: %w", i+1, err)
		}
		nodes = append(nodes, n)
		bootstrap = append(bootstrap, n.Network().Addrs()...)
		if opts.Started != nil {
			opts.Started(i, n)
		}
	}
	timeout := cmp.Or(opts.PeerTimeout, 30*time.Second)
	deadline := time.Now().Add(timeout)
	for _, n := range nodes {
		for n.Network().PeerCount() < len(nodes)-1 {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("devnet: the nodes did not all peer within %v", timeout)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nodes, nil
}

// relayGatewayMail is the relay gateway's …@tangle address, or "" when the node has none.
func relayGatewayMail(gw identity.Address) string {
	if gw.Key == nil {
		return ""
	}
	return gw.Mail()
}
