package node

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/web"
)

// startWallet starts watching the balance of the data directory's payment wallet on the chain of
// Config.WalletRPC: by address only (payment.WalletAddress reads it without the passphrase, once the
// wallet file exists), so a node never opens the wallet key for this. No endpoint: nothing to start.
func (n *Node) startWallet() error {
	cfg := n.cfg
	if len(cfg.WalletRPC) == 0 {
		return nil
	}
	if cfg.WalletChainID == 0 {
		return errors.New("the wallet balance needs the payment chain's id (--payment-chain-id)")
	}
	ctx, cancel := context.WithTimeout(n.bg, 30*time.Second)
	defer cancel()
	w, err := payment.DialBalanceWatcher(ctx, payment.BalanceWatcherConfig{ChainID: cfg.WalletChainID,
		WalletFile: filepath.Join(cfg.DataDir, payment.WalletFile), Interval: cfg.WalletInterval}, cfg.WalletRPC...)
	if err != nil {
		return err
	}
	n.wallet = w
	n.metrics.MustRegister(w.Collectors()...)
	n.goBackground("wallet balance", func() error { return ignoreCanceled(w.Run(n.bg)) })
	return nil
}

// walletStatus is the wallet's last balance reading for GET /api/status; it never waits for the chain.
func (n *Node) walletStatus() api.Wallet {
	if n.wallet == nil {
		st := api.Wallet{Error: web.ErrWalletOff.Error()}
		if a, err := payment.WalletAddress(filepath.Join(n.cfg.DataDir, payment.WalletFile)); err == nil {
			st.Address = a.Hex()
		}
		return st
	}
	return walletReading(n.wallet.ChainID(), n.wallet.Last())
}

// RefreshWallet reads the wallet's balance from the chain now (POST /api/wallet/refresh); it
// implements web.Wallet.
func (n *Node) RefreshWallet(ctx context.Context) (api.Wallet, error) {
	if n.wallet == nil {
		return api.Wallet{}, web.ErrWalletOff
	}
	r, err := n.wallet.Refresh(ctx)
	return walletReading(n.wallet.ChainID(), r), err
}

func walletReading(chainID uint64, r payment.BalanceReading) api.Wallet {
	st := api.Wallet{ChainID: chainID}
	if r.Address != ([20]byte{}) {
		st.Address = r.Address.Hex()
	}
	if r.Wei != nil {
		st.BalanceWei, st.Balance = r.Wei.String(), payment.FormatIOTA(r.Wei)
		st.CheckedAt = r.CheckedAt.UTC().Format(time.RFC3339)
	}
	if r.Err != nil {
		st.Error = r.Err.Error()
	}
	return st
}
