package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/payment"
)

// railFlags are the payment rail's flags, shared by wallet and storage subscribe.
type railFlags struct {
	commonFlags
	passphraseFile string
	unencrypted    bool
	rpc            string
	chainID        uint64
}

func (r *railFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	r.commonFlags.register(fs, getenv)
	r.registerRail(fs)
}

// registerRail registers the rail's flags without the common ones.
func (r *railFlags) registerRail(fs *flag.FlagSet) {
	fs.StringVar(&r.passphraseFile, "passphrase-file", "", "file whose first line is the identity's passphrase (it also encrypts the wallet)")
	fs.BoolVar(&r.unencrypted, "insecure-unencrypted-wallet", false, "acknowledge keeping the wallet key unencrypted (it holds money)")
	fs.StringVar(&r.rpc, "rpc", "", "comma-separated Ethereum JSON-RPC endpoints of the payment chain; all must agree (e.g. IOTA EVM's)")
	fs.Uint64Var(&r.chainID, "chain-id", payment.IOTAEVMChainID, "chain id of the payment chain (IOTA EVM: 8822)")
}

// wallet loads the wallet of the data directory, creating it on first use.
func (r *railFlags) wallet(env *cmdEnv) (*ecdsa.PrivateKey, bool, error) {
	pass, err := readPassphrase(r.passphraseFile)
	if err != nil {
		return nil, false, err
	}
	path := filepath.Join(r.dataDir, payment.WalletFile)
	k, err := payment.LoadWallet(path, pass, r.unencrypted)
	if errors.Is(err, os.ErrNotExist) {
		if err := node.EnsureDataDir(r.dataDir); err != nil {
			return nil, false, err
		}
		k, err = payment.CreateWallet(path, pass, r.unencrypted)
		return k, err == nil, err
	}
	return k, false, err
}

// rail dials the configured endpoints.
func (r *railFlags) rail(ctx context.Context, env *cmdEnv, key *ecdsa.PrivateKey, led *payment.Ledger) (*payment.EVM, error) {
	if r.rpc == "" {
		return nil, errors.New("no payment chain endpoint: give --rpc <url>[,<url>…] (or TANGLEMAIL_RPC)")
	}
	cfg := payment.EVMConfig{ChainID: r.chainID, Key: key, Ledger: led,
		OnRetry: func(ep, what string, attempt int, err error) {
			fmt.Fprintf(env.stderr, "  %s did not answer %s (try %d): %v; retrying\n", ep, what, attempt, err)
		}}
	return payment.DialEVM(ctx, cfg, strings.Split(r.rpc, ",")...)
}

// paymentChainFlags are a node's or light client's --payment-rpc and --payment-chain-id: the payment
// chain on which it watches the wallet's balance (and, on a node selling storage, verifies payments).
type paymentChainFlags struct {
	rpc     string
	chainID uint64
}

func (p *paymentChainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.rpc, "payment-rpc", "", "JSON-RPC endpoints of the payment chain, comma-separated; all must agree (the wallet's balance shows in the status)")
	fs.Uint64Var(&p.chainID, "payment-chain-id", payment.IOTAEVMChainID, "chain id of the payment chain (IOTA EVM: 8822)")
}

// endpoints are the --payment-rpc URLs (none without the flag).
func (p *paymentChainFlags) endpoints() []string {
	if p.rpc == "" {
		return nil
	}
	return strings.Split(p.rpc, ",")
}

// apply has the node watch the wallet's balance on the chain (no --payment-rpc: no watcher).
func (p *paymentChainFlags) apply(cfg *node.Config) {
	cfg.WalletRPC, cfg.WalletChainID = p.endpoints(), p.chainID
}

type walletFlags struct {
	railFlags
	json bool
}

func walletCommand() *command {
	return &command{
		name:    "wallet",
		summary: "show the payment wallet's address and balance (IOTA)",
		about: `Shows the address of this data directory's payment wallet (an EVM key, for IOTA EVM or another EVM
chain) and, with --rpc, its balance in IOTA. The wallet is created on first use, encrypted under the
identity's passphrase (--passphrase-file); an unencrypted wallet needs --insecure-unencrypted-wallet.
Fund it by sending IOTA to the address on the payment chain.`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &walletFlags{}
			f.railFlags.register(fs, getenv)
			fs.BoolVar(&f.json, "json", false, "print JSON: {\"address\", \"chain_id\", \"balance_wei\", \"balance\"}")
			return f
		},
		run: func(env *cmdEnv, o any, args []string) error {
			f := o.(*walletFlags)
			if len(args) > 0 {
				return usageError{"wallet takes no arguments"}
			}
			k, created, err := f.wallet(env)
			if err != nil {
				return err
			}
			ctx, cancel := env.context()
			defer cancel()
			out := map[string]any{"address": addrHex(k), "chain_id": f.chainID}
			if f.rpc != "" {
				rail, err := f.rail(ctx, env, k, nil)
				if err != nil {
					return err
				}
				defer rail.Close()
				cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
				defer ccancel()
				bal, err := rail.Balance(cctx)
				if err != nil {
					return fmt.Errorf("balance: %w (check --rpc)", err)
				}
				out["balance_wei"] = bal.String()
				out["balance"] = payment.FormatIOTA(bal)
			}
			if f.json {
				return json.NewEncoder(env.stdout).Encode(out)
			}
			if created {
				fmt.Fprintf(env.stdout, "created a new wallet in %s\n", filepath.Join(f.dataDir, payment.WalletFile))
			}
			fmt.Fprintf(env.stdout, "address:  %s\nchain id: %d\n", out["address"], f.chainID)
			if b, ok := out["balance"]; ok {
				fmt.Fprintf(env.stdout, "balance:  %s\n", b)
			} else {
				fmt.Fprintln(env.stdout, "balance:  unknown (give --rpc <url> of the payment chain)")
			}
			return nil
		},
	}
}

func addrHex(k *ecdsa.PrivateKey) string {
	return payment.AddressOf(k).Hex()
}
