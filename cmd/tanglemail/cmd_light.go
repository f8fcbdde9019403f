package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/version"
)

type lightFlags struct {
	serveFlags
	providers     *listFlag
	grants        *listFlag
	quotaMiB      int
	retentionDays int
}

func lightCommand() *command {
	return &command{
		name:    "light",
		summary: "run a light client: your keys and mailboxes here, the Tangle through a storage/public node",
		usage:   "--provider <multiaddr> [--grant <token>]",
		about: `Runs a light client until interrupted. It keeps your identity, your mailboxes and every front door
(IMAP, SMTP submission, the web client and HTTP API, /metrics) on this device exactly like a node, but it
keeps no Tangle: a storage provider (a public node, tanglemail node --storage --public) keeps the blocks
of your route-tag prefix while this device is off and pushes them live while it is on; this device
trial-opens them and files them exactly once. Mail you send is sealed and its proof of work ground here;
the finished blocks are handed to the provider to publish. Your keys never leave this device.

On first start a subscription is created with each provider, with a fresh key of its own (never your
identity's) and the operator's one-time --grant token; it is kept in <data-dir>/light.db (mode 0600).
The provider learns your tag prefix (with 8 tag bits, about 1/256 of all traffic), your network address
and when you connect — not what you receive or from whom. Use more tag bits for a smaller share
(tanglemail init --help).`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &lightFlags{}
			f.serveFlags.register(fs, getenv, serveHelp{
				network: "network: tanglemail, tanglemail-dev",
				smtp:    "host:port of SMTP submission for your mail client",
				imap:    "host:port of IMAP for your mail client",
				tagBits: "tag bits of a new identity (1..16; the provider stores 1/2^bits of all traffic for you)",
			})
			f.providers, f.grants = newListFlag(), newListFlag()
			fs.Var(f.providers, "provider", "storage providers, as multiaddrs ending in /p2p/<peer id>, comma-separated (required)")
			fs.Var(f.grants, "grant", "the providers' one-time grant tokens, in the order of --provider (for the first start)")
			fs.IntVar(&f.quotaMiB, "quota-mib", node.DefaultStorageQuotaMiB, "quota to ask for a new subscription, MiB")
			fs.IntVar(&f.retentionDays, "retention-days", node.DefaultStorageRetentionDays, "how long a provider keeps your blocks, days (new subscription)")
			return f
		},
		run: runLight,
	}
}

func runLight(env *cmdEnv, o any, args []string) error {
	f := o.(*lightFlags)
	if len(f.providers.values) == 0 {
		// The subscriptions "tanglemail storage subscribe" (or an earlier light client) created.
		if _, err := os.Stat(filepath.Join(f.dataDir, node.LightFile)); err == nil {
			saved, err := node.SavedProviders(f.dataDir)
			if err != nil {
				return err
			}
			f.providers.values = saved
		}
	}
	if len(f.providers.values) == 0 {
		return usageError{"--provider is required (or a subscription paid with \"tanglemail storage subscribe\"): the multiaddr of a storage/public node, ending in /p2p/<peer id> (its operator gives it to you with a --grant token)"}
	}
	if f.tagBits < 1 || f.tagBits > 16 {
		return usageError{fmt.Sprintf("--tag-bits %d: a light client needs 1..16", f.tagBits)}
	}
	cfg, err := f.config(env, args)
	if err != nil {
		return err
	}
	cfg.StorageProviders, cfg.StorageGrants = f.providers.values, f.grants.values
	cfg.StorageQuotaMiB, cfg.StorageRetentionDays = f.quotaMiB, f.retentionDays
	if cfg.RelayGateway, _, err = node.LoadRelayGateway(f.dataDir); err != nil {
		return err // the gateway of "tanglemail gateway claim": Internet mail goes out through it
	}
	if cfg.InternetAddress, err = node.ClaimedInternetAddress(f.dataDir, cfg.RelayGateway); err != nil {
		return err
	}
	ctx, cancel := env.context()
	defer cancel()
	n, err := node.StartLight(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	if n.CreatedIdentity() {
		fmt.Fprintf(env.stdout, "Created a new identity in %s.\n", f.dataDir)
	}
	printLightSettings(env, n, cfg.Network.Name, f.dataDir)
	fmt.Fprintln(env.stdout, "\nStop with Ctrl-C.")
	<-ctx.Done()
	fmt.Fprintln(env.stdout, "Stopping…")
	return n.Close()
}

// printLightSettings prints a light client's address, providers and mail client settings.
func printLightSettings(env *cmdEnv, n *node.Node, network, dataDir string) {
	var provs []string
	for _, c := range n.LightClients() {
		provs = append(provs, c.Name())
	}
	fmt.Fprintf(env.stdout, `tanglemail %s light client running on network %s.
  Your address:  %s
  Providers:     %s
`, version.Get().Version, network, n.Identity().Address().Mail(), strings.Join(provs, " "))
	printClientSettings(env, n, dataDir)
}
