package node

import (
	"context"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/payment/devchain"
)

// TestWalletBalanceInStatus: a node given a payment chain (an in-process dev chain over JSON-RPC)
// shows its wallet's balance in the status and /metrics without the wallet's passphrase; after a
// transfer, POST /api/wallet/refresh reads the new balance at once.
func TestWalletBalanceInStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	key, _ := crypto.GenerateKey()
	addr := crypto.PubkeyToAddress(key.PublicKey)
	chain, err := devchain.Start(devchain.Config{Funded: []common.Address{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	dir := t.TempDir()
	payment.WalletKDF.Time, payment.WalletKDF.MemoryKiB = 1, 64
	if err := payment.SaveWallet(filepath.Join(dir, payment.WalletFile), key, []byte("the identity's passphrase"), false); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir)
	cfg.WalletRPC, cfg.WalletChainID, cfg.WalletInterval = []string{chain.URL}, devchain.ChainID, time.Hour
	n := startNode(t, cfg)

	thousand := new(big.Int).Mul(big.NewInt(1000), big.NewInt(1e18))
	waitFor(t, "the wallet's balance in the status", 60*time.Second, func() bool { return n.Status().Wallet.BalanceWei != "" })
	w := n.Status().Wallet
	if w.Address != addr.Hex() || w.ChainID != devchain.ChainID || w.BalanceWei != thousand.String() || w.Balance != "1000 IOTA" ||
		w.CheckedAt == "" || w.Error != "" {
		t.Fatalf("status wallet %+v", w)
	}
	if g := gauge(t, n, "tanglemail_wallet_balance_iota"); g != 1000 {
		t.Fatalf("tanglemail_wallet_balance_iota = %v", g)
	}

	// Pay 2.5 IOTA away; the hourly poll has not seen it, a refresh does.
	c := chain.Client()
	price, err := c.SuggestGasPrice(ctx)
	if err != nil {
		t.Fatal(err)
	}
	to := common.HexToAddress("0x000000000000000000000000000000000000beef")
	value := new(big.Int).Mul(big.NewInt(25), big.NewInt(1e17))
	tx, err := types.SignTx(types.NewTx(&types.LegacyTx{To: &to, Value: value, Gas: 21000, GasPrice: price}),
		types.LatestSignerForChainID(big.NewInt(devchain.ChainID)), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	chain.Commit()
	if got := n.Status().Wallet.BalanceWei; got != thousand.String() {
		t.Fatalf("the status changed before a refresh: %s", got)
	}
	var r api.Wallet
	apiOf(t, n).call("POST", "/api/wallet/refresh", nil, &r, http.StatusOK)
	bal, _ := new(big.Int).SetString(r.BalanceWei, 10)
	spent := new(big.Int).Sub(thousand, bal)
	if bal == nil || spent.Cmp(value) <= 0 || spent.Cmp(new(big.Int).Add(value, big.NewInt(1e16))) > 0 || r.Error != "" {
		t.Fatalf("after paying 2.5 IOTA: %+v", r)
	}
	if st := n.Status().Wallet; st != r {
		t.Fatalf("status %+v after refresh %+v", st, r)
	}
	t.Logf("wallet after the transfer: %s", r.Balance)
}

// TestWalletRefreshWithoutChain: without --payment-rpc the status says why the balance is unknown
// (and still shows the wallet's address), and a refresh is refused with 409.
func TestWalletRefreshWithoutChain(t *testing.T) {
	dir := t.TempDir()
	key, _ := crypto.GenerateKey()
	if err := payment.SaveWallet(filepath.Join(dir, payment.WalletFile), key, nil, true); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, testConfig(t, dir))
	w := n.Status().Wallet
	if w.Address != crypto.PubkeyToAddress(key.PublicKey).Hex() || w.BalanceWei != "" || !strings.Contains(w.Error, "no payment chain configured") {
		t.Fatalf("status wallet without a chain: %+v", w)
	}
	var e api.Error
	if apiOf(t, n).call("POST", "/api/wallet/refresh", nil, &e, http.StatusConflict); !strings.Contains(e.Error, "--payment-rpc") {
		t.Fatalf("refresh without a chain: %q", e.Error)
	}
}
