package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/payment/devchain"
)

func TestWalletCommand(t *testing.T) {
	payment.WalletKDF.Time, payment.WalletKDF.MemoryKiB, payment.WalletKDF.Threads = 1, 64, 1
	dir := t.TempDir()
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("correct horse\n"), 0o600)

	// No passphrase and no acknowledgement: refused, nothing written.
	code, _, errOut := runCLI(t, nil, "wallet", "--data-dir", dir)
	if code == 0 || !strings.Contains(errOut, "insecure-unencrypted-wallet") {
		t.Fatalf("unencrypted wallet without acknowledgement: %d %q", code, errOut)
	}
	code, out, errOut := runCLI(t, nil, "wallet", "--data-dir", dir, "--passphrase-file", pass)
	if code != 0 || !strings.Contains(out, "created a new wallet") || !strings.Contains(out, "balance:  unknown") {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "wallet", "--data-dir", dir, "--passphrase-file", pass, "--json")
	var w struct{ Address string }
	if code != 0 || json.Unmarshal([]byte(out), &w) != nil || !common.IsHexAddress(w.Address) {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	chain, err := devchain.Start(devchain.Config{Funded: []common.Address{common.HexToAddress(w.Address)}})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	code, out, errOut = runCLI(t, nil, "wallet", "--data-dir", dir, "--passphrase-file", pass, "--rpc", chain.URL, "--chain-id", "1337")
	if code != 0 || !strings.Contains(out, "balance:  1000 IOTA") || !strings.Contains(out, w.Address) {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, nil, "wallet", "--data-dir", dir, "--passphrase-file", pass, "--rpc", chain.URL, "--json")
	if code != 0 || !strings.Contains(out, `"balance":"1000 IOTA"`) || !strings.Contains(out, `"balance_wei":"1000000000000000000000"`) {
		t.Fatalf("%d %q", code, out)
	}
}

// TestPaymentChainFlags: `tanglemail node` and `tanglemail light` both take --payment-rpc and
// --payment-chain-id, and hand them to the node as the chain on which it watches the wallet's
// balance; without --payment-rpc there is no watcher.
func TestPaymentChainFlags(t *testing.T) {
	for _, cmd := range []*command{nodeCommand(), lightCommand()} {
		for _, args := range [][]string{{"--payment-rpc", "http://127.0.0.1:1,http://127.0.0.1:2", "--payment-chain-id", "1337"}, nil} {
			fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
			o := cmd.flags(fs, func(string) string { return "" })
			if err := fs.Parse(args); err != nil {
				t.Fatalf("%s %v: %v", cmd.name, args, err)
			}
			var pc *paymentChainFlags
			switch f := o.(type) {
			case *nodeFlags:
				pc = &f.payChain
			case *lightFlags:
				pc = &f.payChain
			}
			cfg := node.DefaultConfig("")
			pc.apply(&cfg)
			if args == nil {
				if cfg.WalletRPC != nil || cfg.WalletChainID != payment.IOTAEVMChainID {
					t.Fatalf("%s without flags: %v %d", cmd.name, cfg.WalletRPC, cfg.WalletChainID)
				}
				continue
			}
			if !slices.Equal(cfg.WalletRPC, []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}) || cfg.WalletChainID != 1337 {
				t.Fatalf("%s: %v %d", cmd.name, cfg.WalletRPC, cfg.WalletChainID)
			}
		}
	}
}
