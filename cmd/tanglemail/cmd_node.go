package main

import (
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/version"
)

type nodeFlags struct {
	serveFlags
	storage      bool // the storage provider: --storage, --storage-cap, --public, --storage-allow
	storageCap   string
	public       bool
	storageAllow *listFlag
	p2pListen    *listFlag
	bootstrap    *listFlag
	relayService bool
	relays       *listFlag
	mdns         bool
	dht          bool
	blockBudget  string
	// blob mail fetched without asking (issue 11): --blob-auto-mib, --blob-auto-stranger-mib
	blobAutoMiB, blobAutoStrangerMiB float64
	storageProv                      *listFlag
	storageGrant                     *listFlag
	// paid storage (issue 10): --storage-price, --payment-address, --payment-rpc, --payment-chain-id,
	// --payment-confirmations
	storagePrice, paymentAddress string
	paymentConfirmations         uint64
	relayGateway                 string // --relay-gateway: Internet mail goes out through it
}

func nodeCommand() *command {
	return &command{
		name:    "node",
		summary: "run a node (the default command)",
		about: `Runs a node until interrupted (Ctrl-C or SIGTERM). On first start it creates the data directory, an
identity and a password, and prints the address.

The node listens for peers on --p2p-listen, finds peers on the LAN with mDNS and through the --bootstrap
peers you give it (there are no built-in public bootstrap peers), stores and gossips the blocks of its
shards, fetches missing blocks and catches up after downtime. Its web client and HTTP API listen on
--api-listen (loopback only) with the generated password; "tanglemail status", "peers", "contacts" and
"chat" use it.

Behind a NAT (most home machines), give --relay the address of a public node: the node then holds a
relay slot there, so peers reach it through the public node, and tries to make such connections direct
(hole punching). A public node with a public address runs --relay-service for others.`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &nodeFlags{}
			f.serveFlags.register(fs, getenv, serveHelp{
				network: "network to join: tanglemail, tanglemail-dev",
				smtp:    "host:port of SMTP submission for your mail client (STARTTLS; AUTH needs TLS off loopback)",
				imap:    "host:port of IMAP for your mail client (STARTTLS; login needs TLS off loopback)",
				tagBits: "tag bits of a new identity (0..16, see tanglemail init --help)",
			})
			d := node.DefaultConfig("")
			f.p2pListen = newListFlag(d.P2PListen...)
			f.bootstrap = newListFlag()
			fs.Var(f.p2pListen, "p2p-listen", "multiaddrs to listen on for peers, comma-separated")
			fs.Var(f.bootstrap, "bootstrap", "peers to dial at start, as multiaddrs ending in /p2p/<peer id>, comma-separated")
			f.relays = newListFlag()
			fs.BoolVar(&f.relayService, "relay-service", false, "run a circuit relay for nodes behind NAT (for a public node with a public address)")
			fs.Var(f.relays, "relay", "public nodes to be reachable through when behind NAT, as multiaddrs ending in /p2p/<peer id>, comma-separated")
			fs.BoolVar(&f.mdns, "mdns", d.MDNS, "discover peers on the local network with mDNS")
			fs.BoolVar(&f.dht, "dht", d.DHT, "discover peers through the Kademlia DHT (seeded only by the bootstrap peers)")
			f.storageAllow = newListFlag()
			fs.BoolVar(&f.storage, "storage", false, "run a storage provider: keep subscribers' sealed blocks past their TTL (see tanglemail storage --help)")
			fs.StringVar(&f.storageCap, "storage-cap", "1GiB", "disk cap of the storage provider, e.g. 512MiB, 10GiB (subscriptions' quotas never exceed it)")
			fs.BoolVar(&f.public, "public", false, "serve light clients: publish their blocks (proof of work checked first, rate-limited) and give tips; implies --storage and --relay-service")
			fs.StringVar(&f.storagePrice, "storage-price", "", "sell storage subscriptions: price in IOTA per MiB·day, e.g. 0.0001 (needs --payment-address and --payment-rpc)")
			fs.StringVar(&f.paymentAddress, "payment-address", "", "where subscribers pay (an address on the payment chain, 0x…)")
			fs.Uint64Var(&f.paymentConfirmations, "payment-confirmations", payment.DefaultConfirmations, "blocks a payment needs (its own included) before a subscription is activated")
			fs.Var(f.storageAllow, "storage-allow", "subscription keys (hex or base64) the storage provider activates without a grant, comma-separated")
			f.storageProv, f.storageGrant = newListFlag(), newListFlag()
			fs.Float64Var(&f.blobAutoMiB, "blob-auto-mib", node.DefaultBlobAutoContact>>20, "largest mail from a contact fetched without asking, MiB (attachments travel as sealed blobs; 0: always ask)")
			fs.Float64Var(&f.blobAutoStrangerMiB, "blob-auto-stranger-mib", node.DefaultBlobAutoStranger>>20, "largest mail from anyone not in your contacts fetched without asking, MiB (larger: a notice in INBOX, accept it in the web client)")
			fs.Var(f.storageProv, "storage-provider", "storage providers that keep your mail while this node is off (multiaddrs ending in /p2p/<peer id>, comma-separated); fetched from at every start")
			fs.Var(f.storageGrant, "storage-grant", "the providers' one-time grant tokens, in the order of --storage-provider (needed when the subscription is first created)")
			fs.StringVar(&f.relayGateway, "relay-gateway", "", "<address>@tangle of the Internet-mail gateway that sends your mail to Internet addresses (SMTP submission then accepts them); default: the gateway of your last \"tanglemail gateway claim\"")
			fs.StringVar(&f.blockBudget, "block-budget", "4GiB", "disk for relayed blocks, e.g. 512MiB, 4GiB, 1TiB (the oldest go first when full; blocks not yet opened and your own mail awaiting receipts are kept apart)")
			return f
		},
		run: runNode,
	}
}

func runNode(env *cmdEnv, o any, args []string) error {
	f := o.(*nodeFlags)
	cfg, err := nodeConfig(env, f, args)
	if err != nil {
		return err
	}
	return serveNode(env, f, cfg, nil)
}

// nodeConfig turns the node flags into a node configuration; args must be empty.
func nodeConfig(env *cmdEnv, f *nodeFlags, args []string) (node.Config, error) {
	cfg, err := f.config(env, args)
	if err != nil {
		return node.Config{}, err
	}
	cfg.P2PListen = f.p2pListen.values
	cfg.Bootstrap = f.bootstrap.values
	cfg.MDNS = f.mdns
	cfg.RelayService = f.relayService || f.public // a public node relays for nodes behind NAT (issue 9)
	cfg.Relays = f.relays.values
	cfg.DHT = f.dht
	cfg.StorageProviders, cfg.StorageGrants = f.storageProv.values, f.storageGrant.values
	cfg.BlobAutoContact, cfg.BlobAutoStranger = blobLimit(f.blobAutoMiB), blobLimit(f.blobAutoStrangerMiB)
	if f.relayGateway != "" {
		if cfg.RelayGateway, err = mail.ParseRecipient(f.relayGateway); err != nil {
			return node.Config{}, usageError{fmt.Sprintf("--relay-gateway %q: want the gateway's <address>@tangle (%v)", f.relayGateway, err)}
		}
	} else if cfg.RelayGateway, _, err = node.LoadRelayGateway(f.dataDir); err != nil {
		return node.Config{}, err // the gateway recorded by "tanglemail gateway claim"
	}
	if cfg.InternetAddress, err = node.ClaimedInternetAddress(f.dataDir, cfg.RelayGateway); err != nil {
		return node.Config{}, err
	}
	if cfg.BlockBudget, err = parseSize(f.blockBudget); err != nil || cfg.BlockBudget < 16<<20 {
		return node.Config{}, usageError{fmt.Sprintf("--block-budget %q: want a size of at least 16MiB, such as 512MiB or 4GiB", f.blockBudget)}
	}

	cfg.Storage.Enabled = f.storage || f.public || len(f.storageAllow.values) > 0
	cfg.Storage.Public = f.public
	if cfg.Storage.CapBytes, err = parseSize(f.storageCap); err != nil || cfg.Storage.CapBytes < 1<<20 {
		return node.Config{}, usageError{fmt.Sprintf("--storage-cap %q: want a size of at least 1MiB, such as 512MiB or 10GiB", f.storageCap)}
	}
	for _, k := range f.storageAllow.values {
		key, err := node.ParseStorageKey(k)
		if err != nil {
			return node.Config{}, usageError{err.Error()}
		}
		cfg.Storage.Allow = append(cfg.Storage.Allow, key)
	}
	if f.storagePrice != "" {
		price, err := payment.ParseIOTA(f.storagePrice)
		if err != nil || price == 0 {
			return node.Config{}, usageError{fmt.Sprintf("--storage-price %q: want a positive amount of IOTA per MiB·day, such as 0.0001", f.storagePrice)}
		}
		payee, err := payment.ParseAddress(f.paymentAddress)
		if err != nil {
			return node.Config{}, usageError{"--storage-price needs --payment-address 0x… (where subscribers pay)"}
		}
		if f.payChain.rpc == "" {
			return node.Config{}, usageError{"--storage-price needs --payment-rpc <url>[,<url>…] (the payment chain's JSON-RPC endpoints)"}
		}
		cfg.Storage.Enabled = true
		cfg.Storage.Payments = &node.StoragePaymentsConfig{RPC: f.payChain.endpoints(), ChainID: f.payChain.chainID,
			Confirmations: f.paymentConfirmations, Payee: payee, Price: price}
	}
	return cfg, nil
}

// serveNode runs a node on cfg until the command is stopped; banner, if set, prints more once it runs.
func serveNode(env *cmdEnv, f *nodeFlags, cfg node.Config, banner func(*node.Node)) error {
	ctx, cancel := env.context()
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	if n.CreatedIdentity() {
		fmt.Fprintf(env.stdout, "Created a new identity in %s.\n", f.dataDir)
	}
	fmt.Fprintf(env.stdout, `tanglemail %s node running on network %s.
  Your address:  %s
  Peer id:       %s
  Peer addrs:    %s
`, version.Get().Version, cfg.Network.Name, n.Identity().Address().Mail(), n.Network().ID(), strings.Join(n.Network().Addrs(), " "))
	printClientSettings(env, n, f.dataDir)
	fmt.Fprint(env.stdout, `  The node's certificate is self-signed: accept it once in your mail client.

Stop with Ctrl-C.
`)
	if st := n.StorageStatus(); st.Enabled {
		role := "storage provider"
		if st.Public {
			role = "public node (storage, publish and tips for light clients)"
		}
		fmt.Fprintf(env.stdout, "\nThis node is a %s with a %s cap. Grant a subscription with\n  tanglemail storage grant --mib 64 --days 30\n",
			role, f.storageCap)
	}
	if banner != nil {
		banner(n)
	}
	hinted := make(chan struct{})
	go func() {
		defer close(hinted)
		t := time.NewTimer(noPeersGrace)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			if n.Network().PeerCount() == 0 {
				fmt.Fprintf(env.stdout, "\nThe node has %s.\n", node.NoPeersHint)
			}
		}
	}()
	<-ctx.Done()
	<-hinted
	fmt.Fprintln(env.stdout, "Stopping…")
	return n.Close()
}

// networkFlag resolves --network to a network that has proof-of-work parameters.
func networkFlag(name string) (tangle.Params, error) {
	params, ok := tangle.NetworkByName(name)
	if !ok || params.WorkPerByte == 0 {
		return params, usageError{fmt.Sprintf("--network %q: want tanglemail or tanglemail-dev", name)}
	}
	return params, nil
}

// serveFlags are the flags `tanglemail node` and `tanglemail light` share: the network, the front
// doors' listen addresses, a new identity's tag bits, the passphrase file, the log level and the
// payment chain (--payment-rpc, --payment-chain-id: the wallet's balance in the status).
type serveFlags struct {
	commonFlags
	network, apiListen, smtpListen, imapListen string
	tagBits                                    int
	passphraseFile, logLevel                   string
	payChain                                   paymentChainFlags
}

// serveHelp is the help of the serveFlags whose meaning differs between a node and a light client.
type serveHelp struct{ network, smtp, imap, tagBits string }

func (s *serveFlags) register(fs *flag.FlagSet, getenv func(string) string, h serveHelp) {
	s.commonFlags.register(fs, getenv)
	d := node.DefaultConfig("")
	fs.StringVar(&s.network, "network", d.Network.Name, h.network)
	fs.StringVar(&s.apiListen, "api-listen", d.APIListen, "host:port of the web client and HTTP API (loopback only)")
	fs.StringVar(&s.smtpListen, "smtp-listen", d.SMTPListen, h.smtp)
	fs.StringVar(&s.imapListen, "imap-listen", d.IMAPListen, h.imap)
	fs.IntVar(&s.tagBits, "tag-bits", d.TagBits, h.tagBits)
	fs.StringVar(&s.passphraseFile, "passphrase-file", "", "file whose first line is the identity's passphrase")
	fs.StringVar(&s.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	s.payChain.register(fs)
}

// config refuses arguments, checks --network and --log-level, reads --passphrase-file and returns the
// node configuration these flags make (the rest is the caller's).
func (s *serveFlags) config(env *cmdEnv, args []string) (node.Config, error) {
	if len(args) > 0 {
		return node.Config{}, usageError{fmt.Sprintf("unexpected argument %q", args[0])}
	}
	params, err := networkFlag(s.network)
	if err != nil {
		return node.Config{}, err
	}
	log, pass, err := logAndPassphrase(env, s.logLevel, s.passphraseFile)
	if err != nil {
		return node.Config{}, err
	}
	cfg := node.DefaultConfig(s.dataDir)
	cfg.Network = params
	cfg.APIListen, cfg.SMTPListen, cfg.IMAPListen = s.apiListen, s.smtpListen, s.imapListen
	cfg.TagBits = s.tagBits
	cfg.Passphrase = pass
	cfg.Log = log
	s.payChain.apply(&cfg)
	return cfg, nil
}

// logAndPassphrase checks --log-level, reads --passphrase-file and returns a logger writing to stderr.
func logAndPassphrase(env *cmdEnv, logLevel, passphraseFile string) (*slog.Logger, []byte, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", logLevel)}
	}
	pass, err := readPassphrase(passphraseFile)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level})), pass, nil
}

// printClientSettings prints the web client's address and the mail client settings of a running node or
// light client.
func printClientSettings(env *cmdEnv, n *node.Node, dataDir string) {
	addr := n.Identity().Address().Mail()
	smtpHost, smtpPort, _ := net.SplitHostPort(n.SMTPAddr())
	imapHost, imapPort, _ := net.SplitHostPort(n.IMAPAddr())
	fmt.Fprintf(env.stdout, `  Web client:    http://%s/   (sign in with the password below; also the HTTP API, docs/api.md)

Mail client settings (Thunderbird, mutt, aerc, …):
  Incoming (IMAP):             server %s  port %s  security STARTTLS  authentication normal password
  Outgoing (SMTP submission):  server %s  port %s  security STARTTLS  authentication normal password
  User name:                   %s
  Password:                    %s   (also in %s)
`, n.APIAddr(), imapHost, imapPort, smtpHost, smtpPort, addr, n.Password(), filepath.Join(dataDir, node.PasswordFile))
}

// parseSize parses a byte count with an optional binary unit: 1048576, 512KiB, 64MiB, 4GiB, 1TiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}, {"B", 0}}
	s = strings.TrimSpace(s)
	shift := uint(0)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64>>shift {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v << shift, nil
}

// noPeersGrace is how long after start a node without peers says what to do (bootstrap peers and
// remembered ones usually connect within a second or two).
var noPeersGrace = 10 * time.Second

// blobLimit turns a --blob-auto-*-mib value into node.Config's bytes (negative there: never).
func blobLimit(mib float64) int64 {
	if mib <= 0 {
		return -1
	}
	return int64(mib * (1 << 20))
}
