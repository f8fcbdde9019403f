// Package node wires the layers into one running tanglemail node: the identity and password in the data
// directory, the DAG block store, the peer-to-peer network, and the local API. It owns the node's
// lifecycle (start, background maintenance, clean shutdown) and its status.
//
// Implementation notes:
//   - Start opens everything in dependency order (identity → store → network → API) and Close closes in
//     reverse, so the store is never closed while the network may still write to it.
//   - The API listener is bound before api.json is written, and api.json is removed on Close, so a CLI
//     that finds api.json finds a node that is (or was until a crash) listening.
//   - Client-facing listeners are loopback by default; a non-loopback address needs TLS.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
	"github.com/tanglemail/tanglemail/internal/web"
)

// Config says how to run a node. The zero value is not usable: start from DefaultConfig.
type Config struct {
	DataDir    string
	Network    tangle.Params
	P2PListen  []string // multiaddrs
	Bootstrap  []string // multiaddrs with /p2p/<id>
	MDNS       bool
	DHT        bool
	APIListen  string // host:port of the local JSON API
	Passphrase []byte // of the identity; empty: unencrypted
	TagBits    int    // for a new identity
	Log        *slog.Logger
	// PruneInterval is how often expired blocks are deleted (default 1 min).
	PruneInterval time.Duration
}

// DefaultConfig is the configuration of a user's node on the main network.
func DefaultConfig(dataDir string) Config {
	return Config{
		DataDir:       dataDir,
		Network:       tangle.MainNet,
		P2PListen:     []string{"/ip4/0.0.0.0/tcp/4580", "/ip4/0.0.0.0/udp/4580/quic-v1"},
		MDNS:          true,
		DHT:           true,
		APIListen:     "127.0.0.1:4581",
		TagBits:       8,
		PruneInterval: time.Minute,
	}
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
	api      *web.Server
	apiLn    net.Listener
	started  time.Time

	unlock func()
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Start opens the data directory and starts the node. It returns once the node is reachable by peers and
// by the API; Close stops it.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = time.Minute
	}
	if err := checkLoopback(cfg.APIListen); err != nil {
		return nil, err
	}
	if err := EnsureDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Log, started: time.Now()}
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
	n.store, err = dag.Open(filepath.Join(cfg.DataDir, BlocksFile), cfg.Network)
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
	}
	n.net, err = p2p.New(ctx, pcfg, n.store, cfg.Network, p2p.WithLogger(cfg.Log.With("sub", "p2p")))
	if err != nil {
		return nil, fmt.Errorf("start network: %w", err)
	}
	n.apiLn, err = net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return nil, fmt.Errorf("API listen on %s: %w (is another node running? choose another --api-listen)", cfg.APIListen, err)
	}
	n.api = web.New(n, n.password, cfg.Log.With("sub", "api"))
	bg, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		if err := n.api.Serve(n.apiLn); err != nil {
			n.log.Error("API server stopped", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.pruneLoop(bg)
	}()
	info, _ := json.Marshal(APIInfo{URL: "http://" + n.apiLn.Addr().String(), PID: os.Getpid()})
	if err := writeFileAtomic(filepath.Join(cfg.DataDir, APIFile), info, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", APIFile, err)
	}
	return n, nil
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

// Store is the node's block store.
func (n *Node) Store() *dag.Store { return n.store }

// Status is what `tanglemail status` shows.
type Status struct {
	Address string     `json:"address"`
	Network string     `json:"network"`
	Uptime  string     `json:"uptime"`
	API     string     `json:"api"`
	P2P     p2p.Status `json:"p2p"`
}

// Status returns the node's status; it implements web.Backend.
func (n *Node) Status() any {
	return Status{
		Address: n.id.Address().Mail(),
		Network: n.cfg.Network.Name,
		Uptime:  time.Since(n.started).Round(time.Second).String(),
		API:     "http://" + n.APIAddr(),
		P2P:     n.net.Status(),
	}
}

// Peers lists connected peers; it implements web.Backend.
func (n *Node) Peers() any { return n.net.Status().Peers }

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
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.net != nil {
			errs = append(errs, n.net.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
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
