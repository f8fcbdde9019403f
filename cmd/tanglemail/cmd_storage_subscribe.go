package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/atomicfile"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/p2p"
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

// savedSub is a subscription this data directory holds with a provider (storage-subscriptions.json,
// 0600: it holds the subscription keys).
type savedSub struct {
	Provider string `json:"provider"` // multiaddr with /p2p/
	ID       string `json:"id"`
	KeySeed  string `json:"key_seed"`
	MiB      uint32 `json:"mib"`
}

const subsFile = "storage-subscriptions.json"

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
	if id.TagBits() < 1 {
		return errors.New("your address reveals no tag bits, so a provider could only store everyone's mail: create an identity with --tag-bits ≥ 1")
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

	h, err := p2p.NewClientHost(ctx)
	if err != nil {
		return err
	}
	defer h.Close()
	cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
	defer ccancel()
	pid, err := h.ConnectAddr(cctx, f.provider)
	if err != nil {
		return fmt.Errorf("cannot reach the provider %s: %w", f.provider, err)
	}
	subs := map[string]savedSub{}
	subsPath := filepath.Join(f.dataDir, subsFile)
	if b, err := os.ReadFile(subsPath); err == nil {
		if err := json.Unmarshal(b, &subs); err != nil {
			return fmt.Errorf("%s: %w", subsPath, err)
		}
	}
	saved, have := subs[pid.String()]
	var sub wire.SubID
	if have {
		b, err := hex.DecodeString(saved.ID)
		if err != nil || len(b) != len(sub) {
			return fmt.Errorf("%s: bad subscription id", subsPath)
		}
		copy(sub[:], b)
		fmt.Fprintf(env.stdout, "renewing subscription %s with %s\n", saved.ID, pid)
	} else {
		sess, err := wire.Dial(cctx, h, pid, params.ID)
		if err != nil {
			return fmt.Errorf("storage protocol with %s: %w", pid, err)
		}
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		addr := id.Address()
		prefix := wire.PrefixOf(addr.MakeTag(rand.Reader), uint8(id.TagBits()))
		sub, _, err = sess.Create(cctx, wire.CreateRequest{Prefix: prefix, QuotaMiB: uint32(f.mib), Key: pub})
		sess.Close()
		if err != nil {
			return fmt.Errorf("creating the subscription: %w", err)
		}
		saved = savedSub{Provider: f.provider, ID: hex.EncodeToString(sub[:]), KeySeed: hex.EncodeToString(priv.Seed()), MiB: uint32(f.mib)}
		subs[pid.String()] = saved
		b, _ := json.MarshalIndent(subs, "", "  ")
		if err := atomicfile.Write(subsPath, append(b, '\n'), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "created subscription %s with %s (pending until paid)\n", saved.ID, pid)
	}

	pc := payment.NewClient(h, pid, params.ID)
	terms, err := pc.Terms(cctx)
	if err != nil {
		return fmt.Errorf("the provider's terms: %w", err)
	}
	if terms.Rail != payment.RailEVM || terms.ChainID != f.chainID {
		return fmt.Errorf("the provider is paid on chain id %d; give --chain-id %d and an --rpc of that chain", terms.ChainID, terms.ChainID)
	}
	q, err := pc.Quote(cctx, terms, payment.SubID(sub), uint32(f.days))
	if err != nil {
		return fmt.Errorf("quote: %w", err)
	}
	gas, price, err := rail.EstimateFee(cctx, q)
	if err != nil {
		return fmt.Errorf("estimating the fee: %w", err)
	}
	fee := new(big.Int).Mul(price, new(big.Int).SetUint64(gas))
	bal, err := rail.Balance(cctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "quote from %s:\n  %d MiB for %d days at %s per MiB·day\n  amount:   %s\n  fee:      about %s (gas %d)\n  pay to:   0x%x on chain id %d\n  wallet:   %s, balance %s\n  valid until %s\n",
		pid, q.MiB, q.Days, terms.PricePerMiB, q.Amount, payment.FormatIOTA(fee), gas, q.Address, q.ChainID,
		payment.AddressOf(key).Hex(), payment.FormatIOTA(bal), q.Expires.Local().Format(time.RFC1123))
	if !f.yes {
		fmt.Fprint(env.stdout, "pay? [y/N] ")
		line := ""
		if env.stdin != nil {
			line, _ = bufio.NewReader(env.stdin).ReadString('\n')
		}
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(env.stdout, "not paid.")
			return nil
		}
	}
	tx, res, err := payment.PayAndActivate(ctx, pc, rail, q, time.Second, func(p payment.Progress) {
		switch p.Stage {
		case "paid":
			fmt.Fprintf(env.stdout, "paid: transaction %s\n", p.Tx)
		default:
			fmt.Fprintf(env.stdout, "  waiting: %v\n", p.Err)
		}
	})
	if err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	fmt.Fprintf(env.stdout, "active until %s (transaction %s)\n", res.PaidUntil.Local().Format(time.RFC1123), tx)
	return nil
}
