package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

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
			raw, err := apiGet(f.dataDir, "/api/status")
			if err != nil {
				return err
			}
			if f.json {
				_, err := env.stdout.Write(raw)
				return err
			}
			var st node.Status
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("node answered something unexpected: %w", err)
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
			raw, err := apiGet(f.dataDir, "/api/status")
			if err != nil {
				return err
			}
			var st node.Status
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("node answered something unexpected: %w", err)
			}
			if f.json {
				return json.NewEncoder(env.stdout).Encode(st.P2P.Peers)
			}
			printPeers(env.stdout, &st)
			return nil
		},
	}
}

// apiGet calls the API of the node running on dataDir.
func apiGet(dataDir, path string) ([]byte, error) {
	info, password, err := node.ReadAPIInfo(dataDir)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest("GET", info.URL+path, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("tanglemail", password)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the node on %s does not answer at %s (is it running? it may have crashed): %w", dataDir, info.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		return nil, fmt.Errorf("node answered %s: %s", resp.Status, e.Error)
	}
	return body, nil
}

func printStatus(w io.Writer, st *node.Status) {
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
	fmt.Fprintf(w, "Peer id   %s\n", p.PeerID)
	for _, a := range p.ListenAddrs {
		fmt.Fprintf(w, "Listening %s\n", a)
	}
	fmt.Fprintf(w, "Peers     %d connected, %d blocked\n", len(p.Peers), len(p.Banned))
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
		fmt.Fprintf(w, "  PoW     %s block %d/%d: ~%.0f%% of the expected work\n", j.Recipient, j.Block, j.Blocks, pct)
	}
	if p.StoreError != "" {
		fmt.Fprintf(w, "Warning   the block store reports: %s\n", p.StoreError)
	}
}

func printPeers(w io.Writer, st *node.Status) {
	if len(st.P2P.Peers) == 0 {
		fmt.Fprintln(w, "No peers connected. Give the node peers with --bootstrap, or run it on a LAN with other nodes (mDNS).")
		return
	}
	for _, p := range st.P2P.Peers {
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
