package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/payment/devchain"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/store"
)

var devnetNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
	"mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "uma", "victor", "walter"}

type devnetFlags struct {
	dir      string
	nodes    int
	json     bool
	logLevel string
	light    bool
	chain    bool
}

// devnetNode is what --json prints for each node.
type devnetNode struct {
	Name     string `json:"name"`
	Address  string `json:"address"`
	IMAP     string `json:"imap"`
	SMTP     string `json:"smtp"`
	Web      string `json:"web"`
	User     string `json:"user"`
	Password string `json:"password"`
	DataDir  string `json:"data_dir"`
	// Role is "storage" (the storage/public node of --light), "light" (the light client) or empty.
	Role     string `json:"role,omitempty"`
	Provider string `json:"provider,omitempty"` // the light client's provider (multiaddr)
	Storage  string `json:"storage,omitempty"`  // a storage provider's multiaddr (alice sells storage)
	Wallet   string `json:"wallet,omitempty"`   // its payment wallet on the dev chain (funded)
	RPC      string `json:"rpc,omitempty"`      // the dev chain's JSON-RPC URL
}

func devnetCommand() *command {
	return &command{
		name:    "devnet",
		summary: "run a small local network of named nodes in one process",
		about: `Starts --nodes nodes (alice, bob, carol, …) on the development network (tanglemail-dev), each with
its own identity, data directory and ports, all on 127.0.0.1 and already peered with each other; mDNS and
the DHT are off, nothing leaves this machine. Each node has the others as contacts under their names
(alice knows bob and carol, …), so "tanglemail chat --data-dir <dir>/alice bob" works at once. It prints each node's address and mail-client settings,
then runs until interrupted. Point two mail clients at two nodes and mail between them.

With --light the first node (alice) is also a storage and public node (tanglemail node --storage
--public), and one more user runs as a light client through it: no Tangle, its mail kept by alice's
node and pushed to it live. That light client runs inside this process, which holds its data directory
(as it holds every node's) and stops it with alice's node, so "tanglemail light" cannot take it over.
To try a light client of your own (stop it and start it again to see mail that came meanwhile), issue
a grant on alice while the devnet runs and start one in a new data directory; both commands are
printed with the light client's settings.

With --chain (the default) it also runs an EVM dev chain in-process (go-ethereum's simulated backend,
chain id 1337, a block a second) served over JSON-RPC on 127.0.0.1, and gives every node a payment
wallet (wallet.key, unencrypted: a devnet's money is play money) funded with 1000 IOTA, for
"tanglemail wallet" and "tanglemail storage subscribe" with --rpc <its URL> --chain-id 1337
--insecure-unencrypted-wallet; alice is a storage provider selling subscriptions on it (0.000001 IOTA
per MiB·day, paid into her wallet, 2 confirmations). With --light as well, the light client pays alice
for its subscription (64 MiB, 30 days) from its own funded wallet before it starts, as "tanglemail
storage subscribe" does — the whole pay → store → fetch path; without --chain it uses a free grant.

With --json it prints one JSON object per node on standard output once all nodes are ready:
{"name","address","imap","smtp","web","user","password","data_dir"} (host:port strings), with --chain
"wallet", "rpc" and alice's "storage" (multiaddr), and with --light "role" ("storage", "light") and
the light client's "provider".`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &devnetFlags{}
			fs.StringVar(&f.dir, "dir", "", "directory for the nodes' data (default: a new temporary directory, removed at exit)")
			fs.IntVar(&f.nodes, "nodes", 3, "number of nodes (1.."+fmt.Sprint(len(devnetNames))+")")
			fs.BoolVar(&f.json, "json", false, "print one JSON object per node once all are ready")
			fs.StringVar(&f.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
			fs.BoolVar(&f.light, "light", false, "make the first node a storage/public node and run one more user as a light client through it, in this process")
			fs.BoolVar(&f.chain, "chain", true, "run an in-process EVM dev chain with a funded payment wallet per node")
			return f
		},
		run: runDevnet,
	}
}

func runDevnet(env *cmdEnv, o any, args []string) error {
	f := o.(*devnetFlags)
	if len(args) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", args[0])}
	}
	maxNodes := len(devnetNames)
	if f.light {
		maxNodes-- // one name for the light client
	}
	if f.nodes < 1 || f.nodes > maxNodes {
		return usageError{fmt.Sprintf("--nodes %d: want 1..%d", f.nodes, maxNodes)}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", f.logLevel)}
	}
	dir := f.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "tanglemail-devnet-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := env.context()
	defer cancel()

	dirs := make([]string, f.nodes)
	for i := range dirs {
		dirs[i] = filepath.Join(dir, devnetNames[i])
	}
	var (
		wallets []common.Address
		chain   *devchain.Chain
	)
	if f.chain {
		wdirs := dirs
		if f.light { // the light client pays alice for its subscription from its own wallet
			wdirs = append(slices.Clone(dirs), filepath.Join(dir, devnetNames[f.nodes]))
		}
		for _, d := range wdirs {
			a, err := devnetWallet(d)
			if err != nil {
				return fmt.Errorf("devnet: wallet: %w", err)
			}
			wallets = append(wallets, a)
		}
		c, err := devchain.Start(devchain.Config{Funded: wallets, Period: time.Second})
		if err != nil {
			return fmt.Errorf("devnet: dev chain: %w", err)
		}
		defer c.Close()
		chain = c
	}
	nodes, err := node.StartDevnet(ctx, dirs, node.DevnetOptions{
		Configure: func(i int, cfg *node.Config) {
			cfg.Log = log.With("node", devnetNames[i])
			if i == 0 && (f.light || chain != nil) {
				cfg.Storage.Enabled = true
				cfg.Storage.Public = f.light
				cfg.RelayService = f.light // a public node relays for nodes behind NAT
			}
			if chain != nil { // every node's status shows its funded wallet's balance
				cfg.WalletRPC, cfg.WalletChainID, cfg.WalletInterval = []string{chain.URL}, devchain.ChainID, devnetWalletInterval
			}
			if chain != nil && i == 0 { // alice sells storage, paid on the dev chain into her wallet
				cfg.Storage.Payments = &node.StoragePaymentsConfig{RPC: []string{chain.URL}, ChainID: devchain.ChainID,
					Confirmations: 2, Payee: wallets[0], Price: 1000}
			}
		},
		Started: func(i int, _ *node.Node) {
			if !f.json {
				fmt.Fprintf(env.stderr, "started %s (%d/%d)\n", devnetNames[i], i+1, f.nodes)
			}
		},
	})
	if errors.Is(err, context.Canceled) {
		return nil // stopped while starting
	}
	if err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].Close()
		}
	}()
	all := nodes
	var providerAddr string
	if f.light {
		var chainURL string
		if chain != nil {
			chainURL = chain.URL
		}
		lightDir := filepath.Join(dir, devnetNames[f.nodes])
		if chainURL != "" && !f.json {
			fmt.Fprintf(env.stderr, "%s subscribes to %s's storage node and pays on the dev chain…\n", devnetNames[f.nodes], devnetNames[0])
		}
		lightNode, addr, err := startDevnetLight(ctx, nodes[0], lightDir, chainURL, log.With("node", devnetNames[f.nodes]))
		if err != nil {
			return fmt.Errorf("devnet: %w", err)
		}
		defer lightNode.Close()
		if !f.json {
			fmt.Fprintf(env.stderr, "started %s, a light client through %s's storage node\n", devnetNames[f.nodes], devnetNames[0])
		}
		all, providerAddr = append(slices.Clone(nodes), lightNode), addr
	}
	if err := introduce(ctx, all); err != nil {
		return fmt.Errorf("devnet: %w", err)
	}
	enc := json.NewEncoder(env.stdout)
	for i, n := range all {
		d := devnetNode{
			Name:     devnetNames[i],
			Address:  n.Identity().Address().Mail(),
			IMAP:     n.IMAPAddr(),
			SMTP:     n.SMTPAddr(),
			Web:      n.APIAddr(),
			User:     n.Identity().Address().Mail(),
			Password: n.Password(),
			DataDir:  filepath.Join(dir, devnetNames[i]),
		}
		switch {
		case f.light && i == 0:
			d.Role = "storage"
		case f.light && i == len(nodes):
			d.Role, d.Provider = "light", providerAddr
		}
		if chain != nil && i < len(wallets) {
			d.Wallet, d.RPC = wallets[i].Hex(), chain.URL
			if st := n.StorageStatus(); st.Enabled && len(st.Addrs) > 0 {
				d.Storage = st.Addrs[0]
			}
		}
		if f.json {
			if err := enc.Encode(d); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(env.stdout, "%-6s %s\n       IMAP %s  SMTP %s (both STARTTLS)  web/API %s\n       user %s  password %s\n",
			d.Name, d.Address, d.IMAP, d.SMTP, d.Web, d.User, d.Password)
		switch d.Role {
		case "storage":
			fmt.Fprintf(env.stdout, "       storage and public node at %s\n", providerAddr)
		case "light":
			fmt.Fprintf(env.stdout, "       light client (no Tangle) through %s's storage node, run by this devnet, which holds %s until it stops;\n"+
				"       a light client of your own through %s, while the devnet runs:\n"+
				"       tanglemail storage grant --data-dir %s --mib 16 --days 7\n"+
				"       tanglemail light --network tanglemail-dev --data-dir <a new directory> --provider %s --grant <its token>\n",
				devnetNames[0], d.DataDir, devnetNames[0], dirs[0], providerAddr)
		}
		if d.Wallet != "" {
			fmt.Fprintf(env.stdout, "       wallet %s (1000 IOTA on the dev chain)\n", d.Wallet)
		}
	}
	if chain != nil && !f.json {
		fmt.Fprintf(env.stdout, "dev chain: JSON-RPC %s, chain id %d, a block a second (tanglemail wallet --data-dir %s --rpc %s --chain-id %d --insecure-unencrypted-wallet)\n",
			chain.URL, devchain.ChainID, dirs[0], chain.URL, devchain.ChainID)
		if st := nodes[0].StorageStatus(); len(nodes) > 1 && len(st.Addrs) > 0 {
			fmt.Fprintf(env.stdout, "alice sells storage at 0.000001 IOTA per MiB·day; bob subscribes with:\n  tanglemail storage subscribe --data-dir %s --provider %s --network tanglemail-dev --rpc %s --chain-id %d --insecure-unencrypted-wallet --mib 16 --days 7\n",
				dirs[1], st.Addrs[0], chain.URL, devchain.ChainID)
		}
	}
	if !f.json {
		fmt.Fprintf(env.stdout, "devnet of %d nodes running in %s. Stop with Ctrl-C.\n", len(all), dir)
	}
	<-ctx.Done()
	return nil
}

// devnetWalletInterval is how often devnet nodes read their wallets' balances (a block a second).
const devnetWalletInterval = 5 * time.Second

// startDevnetLight starts a light client in dir whose storage provider is the devnet's storage node,
// and waits until it has synced; it returns the client and the provider's address. With a dev chain
// (chainURL) the client pays for its subscription from its wallet in dir, as "tanglemail storage
// subscribe" does (once: a subscription light.db holds active is used as it is); without one it uses
// a grant of the storage node's operator.
func startDevnetLight(ctx context.Context, provider *node.Node, dir, chainURL string, log *slog.Logger) (*node.Node, string, error) {
	addrs := provider.Network().Addrs()
	if len(addrs) == 0 || provider.Storage() == nil {
		return nil, "", errors.New("the storage node has no address or no storage provider")
	}
	cfg := node.DevnetConfig(dir)
	cfg.StorageProviders = []string{addrs[0]}
	if chainURL != "" {
		if err := devnetSubscribe(ctx, cfg, addrs[0], chainURL); err != nil {
			return nil, "", fmt.Errorf("the light client's paid subscription: %w", err)
		}
		cfg.WalletRPC, cfg.WalletChainID, cfg.WalletInterval = []string{chainURL}, devchain.ChainID, devnetWalletInterval
	} else {
		grant, err := provider.Storage().Grant(ctx, node.DefaultStorageQuotaMiB, node.DefaultStorageRetentionDays)
		if err != nil {
			return nil, "", err
		}
		cfg.StorageGrants = []string{grant}
	}
	cfg.Log = log
	n, err := node.StartLight(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-n.LightClients()[0].Synced():
	case <-time.After(60 * time.Second):
		n.Close()
		return nil, "", fmt.Errorf("the light client did not reach the storage node within a minute: %s", n.LightClients()[0].Status().LastError)
	case <-ctx.Done():
		n.Close()
		return nil, "", ctx.Err()
	}
	return n, addrs[0], nil
}

// introduce gives each devnet node the others as contacts, under their devnet names. A contact that
// is already there (a --dir used before) is kept; a petname taken by another address is an error that
// says what to do.
func introduce(ctx context.Context, nodes []*node.Node) error {
	for i, n := range nodes {
		for j, other := range nodes {
			if i == j {
				continue
			}
			name, addr := devnetNames[j], other.Identity().Address().Mail()
			err := n.Mailboxes().AddContact(ctx, name, addr)
			if errors.Is(err, store.ErrContactExists) {
				c, cerr := n.Mailboxes().Contact(ctx, name)
				if cerr == nil && c.Address == addr {
					continue
				}
				return fmt.Errorf("%s already has a contact %s with another address: remove it (tanglemail contacts remove %s --data-dir …), or use a new --dir", devnetNames[i], name, name)
			}
			if err != nil {
				return fmt.Errorf("add %s as a contact of %s: %w", name, devnetNames[i], err)
			}
		}
	}
	return nil
}

// devnetSubscribe pays provider for a subscription of the light client in cfg.DataDir from that
// directory's (funded) wallet on the dev chain, unless light.db already holds an active one there.
func devnetSubscribe(ctx context.Context, cfg node.Config, provider, chainURL string) error {
	held, err := node.HeldSubscriptions(ctx, cfg.DataDir, cfg.Network.ID)
	if err != nil {
		return err
	}
	for _, h := range held {
		if h.Err == nil && h.Status.State == wire.Active {
			return nil
		}
	}
	id, _, err := node.LoadOrCreateIdentity(cfg.DataDir, cfg.Passphrase, cfg.TagBits)
	if err != nil {
		return err
	}
	key, err := payment.LoadWallet(filepath.Join(cfg.DataDir, payment.WalletFile), nil, true)
	if err != nil {
		return err
	}
	led, err := payment.OpenLedger(filepath.Join(cfg.DataDir, node.PaymentFile))
	if err != nil {
		return err
	}
	defer led.Close()
	rail, err := payment.DialEVM(ctx, payment.EVMConfig{ChainID: devchain.ChainID, Key: key, Ledger: led}, chainURL)
	if err != nil {
		return err
	}
	defer rail.Close()
	_, err = node.SubscribeStorage(ctx, node.SubscribeRequest{DataDir: cfg.DataDir, Identity: id, Network: cfg.Network,
		Provider: provider, MiB: node.DefaultStorageQuotaMiB, Days: 30, Rail: rail, Poll: 200 * time.Millisecond})
	return err
}

// devnetWallet loads (or creates, unencrypted) the payment wallet of a devnet node's data directory.
func devnetWallet(dir string) (common.Address, error) {
	if err := node.EnsureDataDir(dir); err != nil {
		return common.Address{}, err
	}
	p := filepath.Join(dir, payment.WalletFile)
	k, err := payment.LoadWallet(p, nil, true)
	if errors.Is(err, os.ErrNotExist) {
		k, err = payment.CreateWallet(p, nil, true)
	}
	if err != nil {
		return common.Address{}, err
	}
	return payment.AddressOf(k), nil
}
