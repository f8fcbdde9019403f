package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

type subscribeFlags struct {
	railFlags
	provider string
	network  string
	mib      uint
	days     uint
	yes      bool
}

// registerSubscribe registers subscribe's own flags on the storage command's flag set (data-dir,
// config, mib and days are the storage command's).
func (f *subscribeFlags) registerSubscribe(fs *flag.FlagSet) {
	f.railFlags.registerRail(fs)
	fs.StringVar(&f.provider, "provider", "", "subscribe: the provider's multiaddr, ending in /p2p/<peer id>")
	fs.StringVar(&f.network, "network", "tanglemail", "subscribe: network: tanglemail, tanglemail-dev")
	fs.BoolVar(&f.yes, "yes", false, "subscribe: pay without asking")
}

func runSubscribe(env *cmdEnv, o any, args []string) error {
	f := o.(*subscribeFlags)
	if len(args) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", args[0])}
	}
	if f.provider == "" || !strings.Contains(f.provider, "/p2p/") {
		return usageError{"--provider <multiaddr>/p2p/<peer id> is required"}
	}
	if f.mib == 0 || f.mib > 1<<20 || f.days == 0 || f.days > 3650 {
		return usageError{"--mib and --days must be positive"}
	}
	params, ok := tangle.NetworkByName(f.network)
	if !ok {
		return usageError{fmt.Sprintf("--network %q: want tanglemail or tanglemail-dev", f.network)}
	}
	id, err := loadIdentity(f.dataDir, f.passphraseFile)
	if err != nil {
		return err
	}
	key, _, err := f.wallet(env)
	if err != nil {
		return err
	}
	ctx, cancel := env.context()
	defer cancel()
	led, err := payment.OpenLedger(filepath.Join(f.dataDir, node.PaymentFile))
	if err != nil {
		return err
	}
	defer led.Close()
	rail, err := f.rail(ctx, env, key, led)
	if err != nil {
		return err
	}
	defer rail.Close()
	res, err := node.SubscribeStorage(ctx, node.SubscribeRequest{
		DataDir: f.dataDir, Identity: id, Network: params, Provider: f.provider, MiB: uint32(f.mib), Days: uint32(f.days), Rail: rail,
		Created: func(sub wire.SubID) {
			fmt.Fprintf(env.stdout, "created subscription %x (pending until paid)\n", sub[:])
		},
		Confirm: func(o node.Offer) bool {
			q := o.Quote
			if o.Renewal {
				fmt.Fprintf(env.stdout, "renewing subscription %x with %s\n", q.Sub[:], o.Provider)
			}
			fee := "unknown"
			if o.GasPrice != nil {
				fee = fmt.Sprintf("about %s (gas %d)", payment.FormatIOTA(new(big.Int).Mul(o.GasPrice, new(big.Int).SetUint64(o.Gas))), o.Gas)
			}
			fmt.Fprintf(env.stdout, "quote from %s:\n  %d MiB for %d days at %s per MiB·day\n  amount:   %s\n  fee:      %s\n  pay to:   0x%x on chain id %d\n  wallet:   %s, balance %s\n  valid until %s\n",
				o.Provider, q.MiB, q.Days, o.Terms.PricePerMiB, q.Amount, fee, q.Address, q.ChainID,
				payment.AddressOf(key).Hex(), payment.FormatIOTA(o.Balance), q.Expires.Local().Format(time.RFC1123))
			if f.yes {
				return true
			}
			fmt.Fprint(env.stdout, "pay? [y/N] ")
			line := ""
			if env.stdin != nil {
				line, _ = bufio.NewReader(env.stdin).ReadString('\n')
			}
			a := strings.ToLower(strings.TrimSpace(line))
			return a == "y" || a == "yes"
		},
		Progress: func(p payment.Progress) {
			switch p.Stage {
			case "resuming":
				fmt.Fprintf(env.stdout, "resuming the payment an earlier run sent (transaction %s): it is not paid again\n", p.Tx)
			case "paid":
				fmt.Fprintf(env.stdout, "paid: transaction %s\n", p.Tx)
			case "cancelled":
				fmt.Fprintf(env.stdout, "the refused payment, not in a block yet, is cancelled by transaction %s (it costs only gas)\n", p.Tx)
			default:
				fmt.Fprintf(env.stdout, "  waiting: %v\n", p.Err)
			}
		},
	})
	if err != nil {
		return err
	}
	if !res.Paid {
		fmt.Fprintln(env.stdout, "not paid.")
		return nil
	}
	fmt.Fprintf(env.stdout, "active until %s (transaction %s); a light client uses it with: tanglemail light --data-dir %s\n",
		res.Result.PaidUntil.Local().Format(time.RFC1123), res.Tx, f.dataDir)
	return nil
}

// subscriptionsJSON is the output of "storage subscriptions --json" (a format of the CLI's own): the
// subscriptions the data directory holds, and the wallet, of which only the address and the balance
// (balance_wei, balance) are set, with --rpc ({} without).
type subscriptionsJSON struct {
	Subscriptions []heldJSON `json:"subscriptions"`
	Wallet        api.Wallet `json:"wallet"`
}

// heldJSON is one subscription of "storage subscriptions --json".
type heldJSON struct {
	Provider   string `json:"provider"`
	ID         string `json:"id"`
	State      string `json:"state,omitempty"`
	UsedBytes  uint64 `json:"used_bytes"`
	QuotaBytes uint64 `json:"quota_bytes"`
	PaidUntil  string `json:"paid_until,omitempty"` // RFC 3339
	Error      string `json:"error,omitempty"`
}

// runSubscriptions is "tanglemail storage subscriptions": the subscriber's view of the subscriptions
// the data directory holds (asked of each provider), and, with --rpc, the wallet's balance.
func runSubscriptions(env *cmdEnv, f *subscribeFlags, asJSON bool) error {
	params, ok := tangle.NetworkByName(f.network)
	if !ok {
		return usageError{fmt.Sprintf("--network %q: want tanglemail or tanglemail-dev", f.network)}
	}
	if _, err := os.Stat(filepath.Join(f.dataDir, node.LightFile)); err != nil {
		return fmt.Errorf("no storage subscriptions in %s: create one with \"tanglemail storage subscribe\"", f.dataDir)
	}
	ctx, cancel := env.context()
	defer cancel()
	held, err := node.HeldSubscriptions(ctx, f.dataDir, params.ID)
	if err != nil {
		return err
	}
	var wallet api.Wallet
	if f.rpc != "" {
		key, _, err := f.wallet(env)
		if err != nil {
			return err
		}
		rail, err := f.rail(ctx, env, key, nil)
		if err != nil {
			return err
		}
		defer rail.Close()
		bal, err := rail.Balance(ctx)
		if err != nil {
			return fmt.Errorf("the wallet's balance: %w", err)
		}
		wallet.Address, wallet.BalanceWei, wallet.Balance = payment.AddressOf(key).Hex(), bal.String(), payment.FormatIOTA(bal)
	}
	out := make([]heldJSON, 0, len(held))
	for _, h := range held {
		j := heldJSON{Provider: h.Provider, ID: hex.EncodeToString(h.Sub[:])}
		if h.Err != nil {
			j.Error = h.Err.Error()
		} else {
			j.State, j.UsedBytes, j.QuotaBytes = h.Status.State.String(), h.Status.UsedBytes, h.Status.QuotaBytes
			if !h.Status.Expires.IsZero() {
				j.PaidUntil = h.Status.Expires.UTC().Format(time.RFC3339)
			}
		}
		out = append(out, j)
	}
	if asJSON {
		b, err := json.MarshalIndent(subscriptionsJSON{Subscriptions: out, Wallet: wallet}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(env.stdout, string(b))
		return err
	}
	if wallet.Address != "" {
		fmt.Fprintf(env.stdout, "wallet %s: %s\n", wallet.Address, wallet.Balance)
	}
	for i, j := range out {
		h := held[i]
		if j.Error != "" {
			fmt.Fprintf(env.stdout, "%s\n  subscription %s: %s\n", j.Provider, j.ID, cleanLine(j.Error))
			continue
		}
		fmt.Fprintf(env.stdout, "%s\n  subscription %s: %s, %s of %s used", j.Provider, j.ID, j.State,
			humanBytes(int64(j.UsedBytes)), humanBytes(int64(j.QuotaBytes)))
		switch {
		case h.Status.Expires.IsZero():
			fmt.Fprintf(env.stdout, ", not paid yet\n")
		case h.Status.State == wire.Expired || time.Now().After(h.Status.Expires):
			fmt.Fprintf(env.stdout, ", ended %s: renew with tanglemail storage subscribe --provider %s --days N\n",
				h.Status.Expires.Local().Format(time.RFC1123), j.Provider)
		default:
			fmt.Fprintf(env.stdout, ", paid until %s (%d days left)\n", h.Status.Expires.Local().Format(time.RFC1123),
				int(time.Until(h.Status.Expires).Hours()/24))
		}
	}
	return nil
}
