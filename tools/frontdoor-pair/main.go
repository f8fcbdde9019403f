// Command frontdoor-pair runs two tanglemail nodes (alice and bob) on 127.0.0.1, peered with each
// other, on the benchmark network (proof of work off) or the devnet (real proof of work), prints one
// JSON line with alice's SMTP and IMAP addresses, her user name and password and bob's address, and
// runs until SIGINT or SIGTERM. scripts/frontdoor-compare.sh points its load generator at alice to
// compare her front doors with Postfix and Dovecot (issue 16). The tanglemail command offers no
// benchmark network, hence this tool; nothing leaves the machine (mDNS and the DHT are off).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

func main() {
	network := flag.String("network", "tanglemail-bench", "network: tanglemail-bench (proof of work off) or tanglemail-dev (real proof of work)")
	dir := flag.String("dir", "", "directory for the two nodes' data (required; created if missing)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: frontdoor-pair --dir DIR [--network NAME]\n\n"+
			"Runs alice and bob, peered on 127.0.0.1, and prints alice's settings as one JSON line:\n"+
			`{"smtp","imap","user","password","to"}`+"\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*network, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "frontdoor-pair:", err)
		os.Exit(1)
	}
}

func run(network, dir string) error {
	if dir == "" {
		return fmt.Errorf("--dir is required (see --help)")
	}
	params, ok := tangle.NetworkByName(network)
	if !ok || (params.Name != tangle.BenchNet.Name && params.Name != tangle.DevNet.Name) {
		return fmt.Errorf("--network %q: want %s or %s", network, tangle.BenchNet.Name, tangle.DevNet.Name)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := func(name string, bootstrap []string) (*node.Node, error) {
		cfg := node.DevnetConfig(filepath.Join(dir, name))
		cfg.Network = params
		cfg.Bootstrap = bootstrap
		cfg.Log = log.With("node", name)
		return node.Start(ctx, cfg)
	}
	bob, err := start("bob", nil)
	if err != nil {
		return err
	}
	defer bob.Close()
	alice, err := start("alice", bob.Network().Addrs())
	if err != nil {
		return err
	}
	defer alice.Close()
	deadline := time.Now().Add(60 * time.Second)
	for alice.Network().PeerCount() < 1 || bob.Network().PeerCount() < 1 {
		if time.Now().After(deadline) {
			return fmt.Errorf("the nodes did not peer within 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _ := json.Marshal(map[string]string{
		"smtp": alice.SMTPAddr(), "imap": alice.IMAPAddr(), "user": alice.Identity().Address().Mail(),
		"password": alice.Password(), "to": bob.Identity().Address().Mail(),
	})
	fmt.Println(string(out))
	<-ctx.Done()
	return nil
}
