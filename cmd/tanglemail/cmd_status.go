package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/node"
)

type apiFlags struct {
	commonFlags
	json bool
}

func apiCommandFlags(fs *flag.FlagSet, getenv func(string) string) any {
	f := &apiFlags{}
	f.register(fs, getenv)
	fs.BoolVar(&f.json, "json", false, "print the node's JSON answer unchanged")
	return f
}

func statusCommand() *command {
	return &command{
		name:    "status",
		summary: "show what the running node is doing",
		about: `Asks the node running on the data directory for its status: address, network, peers, subscribed
shards, tips, solid and unsolid blocks, whether it is synced, and bytes in and out.`,
		flags: apiCommandFlags,
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*apiFlags)
			if len(args) > 0 {
				return usageError{"status takes no arguments"}
			}
			var st api.Status
			if printed, err := apiGet(env, f, "/api/status", &st); err != nil || printed {
				return err
			}
			printStatus(env.stdout, &st)
			return nil
		},
	}
}

func peersCommand() *command {
	return &command{
		name:    "peers",
		summary: "list the running node's peers",
		about:   `Asks the node running on the data directory for its connected peers.`,
		flags:   apiCommandFlags,
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*apiFlags)
			if len(args) > 0 {
				return usageError{"peers takes no arguments"}
			}
			var peers []api.Peer
			if printed, err := apiGet(env, f, "/api/peers", &peers); err != nil || printed {
				return err
			}
			printPeers(env.stdout, peers)
			return nil
		},
	}
}

// apiGet calls GET path of the node running on the data directory: with --json it prints the answer
// unchanged (printed), else it decodes it into out.
func apiGet(env *cmdEnv, f *apiFlags, path string, out any) (printed bool, err error) {
	client, err := newAPIClient(env, f.dataDir)
	if err != nil {
		return false, err
	}
	ctx, cancel := env.context()
	defer cancel()
	if f.json {
		raw, err := client.raw(ctx, path)
		if err != nil {
			return false, err
		}
		_, err = env.stdout.Write(raw)
		return true, err
	}
	return false, client.call(ctx, http.MethodGet, path, nil, out)
}

func printStatus(w io.Writer, st *api.Status) {
	p := &st.P2P
	synced := "no (catching up)"
	if p.Synced {
		synced = "yes"
	}
	fmt.Fprintf(w, "Address   %s\n", st.Address)
	fmt.Fprintf(w, "Network   %s (id %s)\n", st.Network, p.NetworkID)
	if st.Version.Version != "" {
		fmt.Fprintf(w, "Version   tanglemail %s\n", st.Version)
	}
	fmt.Fprintf(w, "Uptime    %s\n", st.Uptime)
	printStorageSubscriptions(w, st)
	printWallet(w, &st.Wallet)
	if st.Mode == "light" {
		o := &st.Outbox
		fmt.Fprintf(w, "Outbox    %d delivered, %d failed, %d published", o.Stats.Delivered, o.Stats.Failed, o.Stats.Published)
		if o.WaitingForPeers {
			fmt.Fprint(w, "; waiting for a storage provider")
		}
		fmt.Fprintln(w)
		printLargeMail(w, st.Blobs)
		return
	}
	fmt.Fprintf(w, "Peer id   %s\n", p.PeerID)
	for _, a := range p.ListenAddrs {
		fmt.Fprintf(w, "Listening %s\n", a)
	}
	if p.Reachability != "" {
		reach := p.Reachability
		if p.RelayService {
			reach += "; relaying for nodes behind NAT"
		}
		fmt.Fprintf(w, "Reachable %s\n", reach)
	}
	for _, a := range p.RelayAddrs {
		fmt.Fprintf(w, "Relayed   %s\n", a)
	}
	fmt.Fprintf(w, "Peers     %d connected, %d blocked\n", len(p.Peers), len(p.Banned))
	if len(p.Peers) == 0 {
		fmt.Fprintf(w, "          %s\n", node.NoPeersHint)
	}
	fmt.Fprintf(w, "Synced    %s\n", synced)
	fmt.Fprintf(w, "Shards    %v\n", p.Shards)
	fmt.Fprintf(w, "Blocks    %d stored: %d solid, %d unsolid; %d missing parents\n", p.Blocks, p.Solid, p.Unsolid, p.Missing)
	for _, s := range p.Shards {
		fmt.Fprintf(w, "Tips      shard %d: %d\n", s, p.Tips[s])
	}
	fmt.Fprintf(w, "Store     %s\n", humanBytes(p.StoreBytes))
	fmt.Fprintf(w, "Traffic   in %s, out %s (now %s/s in, %s/s out)\n", humanBytes(p.BytesIn), humanBytes(p.BytesOut),
		humanBytes(int64(p.RateIn)), humanBytes(int64(p.RateOut)))
	o := &st.Outbox
	fmt.Fprintf(w, "Outbox    %d delivered, %d failed, %d published", o.Stats.Delivered, o.Stats.Failed, o.Stats.Published)
	if o.WaitingForPeers {
		fmt.Fprint(w, "; waiting for peers")
	}
	fmt.Fprintln(w)
	for _, j := range o.Jobs {
		pct := 100.0
		if j.Expected > 0 {
			pct = min(99.9, 100*float64(j.Done)/float64(j.Expected))
		}
		fmt.Fprintf(w, "  PoW     %s block %d/%d: ~%.0f%% of the expected work\n", cleanLine(j.Recipient), j.Block, j.Blocks, pct)
	}
	if b := st.Blobs; b != nil && (b.Blobs > 0 || b.Pending > 0 || b.ChunksOut > 0 || b.ChunksIn > 0) {
		fmt.Fprintf(w, "Blobs     %d held (%s), %d mail being fetched or awaiting consent; chunks %d served, %d fetched, %d refused\n",
			b.Blobs, humanBytes(int64(b.UsedBytes)), b.Pending, b.ChunksOut, b.ChunksIn, b.BadChunks)
	}
	printLargeMail(w, st.Blobs)
	if p.StoreError != "" {
		fmt.Fprintf(w, "Warning   the block store reports: %s\n", p.StoreError)
	}
}

// printLargeMail prints one "Large mail" line per large mail being sent (api.BlobSend): its stage and
// which recipients have fetched it.
func printLargeMail(w io.Writer, bs *api.BlobStatus) {
	if bs == nil {
		return
	}
	for _, b := range bs.Sending {
		subject := b.Subject
		if subject == "" {
			subject = "(no subject)"
		}
		fmt.Fprintf(w, "Large mail %q, %s: ", cleanLine(subject), humanBytes(int64(b.Size)))
		switch b.Stage {
		case "sealing":
			fmt.Fprintf(w, "sealing, %d%%\n", percent(b.Sealed, b.Size))
		case "uploading":
			fmt.Fprintf(w, "uploading to storage provider %d of %d, %d%%", min(b.ProvidersDone+1, b.Providers), b.Providers, percent(b.Uploaded, b.Size))
			if b.Error != "" {
				fmt.Fprintf(w, "; failed, will retry: %s", cleanLine(b.Error))
			}
			fmt.Fprintln(w)
		case "sending":
			fmt.Fprintln(w, "sealed; the envelopes are being sealed and published")
		default:
			var parts []string
			for _, r := range b.Recipients {
				state := r.State
				if state == "offered" {
					state = "not fetched yet"
				}
				parts = append(parts, cleanLine(r.Address)+" "+state)
			}
			fmt.Fprintf(w, "%s; %s", b.Stage, strings.Join(parts, ", "))
			if b.Expires != "" && b.Stage == "offered" {
				fmt.Fprintf(w, "; available until %s", b.Expires)
			}
			fmt.Fprintln(w)
		}
	}
}

func percent(n, of uint64) int {
	if of == 0 {
		return 100
	}
	return int(min(100, n*100/of))
}

func printPeers(w io.Writer, peers []api.Peer) {
	if len(peers) == 0 {
		fmt.Fprintf(w, "No peers connected: %s (or run it on a LAN with other nodes: mDNS).\n", strings.TrimPrefix(node.NoPeersHint, "no peers: "))
		return
	}
	for _, p := range peers {
		state := "catching up"
		if p.CaughtUp {
			state = "caught up"
		} else if !p.CatchingUp {
			state = "idle"
		}
		fmt.Fprintf(w, "%s  %-8s %-11s score %6.1f  since %s\n", p.ID, p.Direction, state, p.Score,
			p.ConnectedSince.Local().Format(time.DateTime))
		for _, a := range p.Addrs {
			fmt.Fprintf(w, "    %s\n", a)
		}
	}
}

// humanBytes formats n with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printStorageSubscriptions prints a light client's (or a full node's) storage subscriptions.
func printStorageSubscriptions(w io.Writer, st *api.Status) {
	if st.Mode == "light" {
		fmt.Fprintf(w, "Mode      light client: no Tangle; blocks come from the storage providers below\n")
	}
	for _, s := range st.Storage {
		conn := "connected"
		if !s.Connected {
			conn = "not connected"
		}
		fmt.Fprintf(w, "Storage   %s: %s, %s, %s of %s used (%d%%), %d fetched, %d pushed\n", s.Provider, conn,
			cmp.Or(s.State, "state unknown"), humanBytes(int64(s.UsedBytes)), humanBytes(int64(s.QuotaBytes)), s.QuotaPercent,
			s.Fetched, s.Pushed)
		if s.QuotaPercent >= 80 {
			fmt.Fprintf(w, "          the quota is %d%% full: the provider refuses new blocks for you when it is full\n", s.QuotaPercent)
		}
		if s.LastError != "" {
			fmt.Fprintf(w, "          last error: %s\n", cleanLine(s.LastError))
		}
	}
}

// printWallet prints the payment wallet's balance line: the balance as last read and when, or why it
// is unknown; a failed last read is shown beside the older balance.
func printWallet(w io.Writer, wl *api.Wallet) {
	addr := wl.Address
	if addr == "" {
		addr = "no wallet yet (tanglemail wallet creates one)"
	}
	switch {
	case wl.Balance != "":
		fmt.Fprintf(w, "Wallet    %s: %s (read %s)\n", addr, wl.Balance, wl.CheckedAt)
	case wl.ChainID == 0:
		fmt.Fprintf(w, "Wallet    %s: balance unknown (no payment chain configured: --payment-rpc)\n", addr)
	default:
		fmt.Fprintf(w, "Wallet    %s: balance not read yet\n", addr)
	}
	if wl.Error != "" && wl.ChainID != 0 {
		fmt.Fprintf(w, "          last read failed: %s\n", cleanLine(wl.Error))
	}
}
