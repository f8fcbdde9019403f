package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/payment/devchain"
	"github.com/tanglemail/tanglemail/internal/storage"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestStorageSubscribe runs `tanglemail storage subscribe` against a storage provider taking payments
// on a dev chain (go-ethereum's simulated backend over JSON-RPC on loopback, a block every 200 ms):
// declined → nothing paid; --yes → paid, confirmed, active; again → renewed.
func TestStorageSubscribe(t *testing.T) {
	payment.WalletKDF.Time, payment.WalletKDF.MemoryKiB, payment.WalletKDF.Threads = 1, 64, 1
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("pw\n"), 0o600)
	if code, _, errOut := runCLI(t, nil, "init", "--data-dir", dir, "--passphrase-file", pass, "--tag-bits", "8"); code != 0 {
		t.Fatal(errOut)
	}
	_, out, _ := runCLI(t, nil, "wallet", "--data-dir", dir, "--passphrase-file", pass, "--json")
	var w struct{ Address string }
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatal(out)
	}
	chain, err := devchain.Start(devchain.Config{Funded: []common.Address{common.HexToAddress(w.Address)}, Period: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()

	params := tangle.DevNet
	prov, err := storage.Open(storage.Config{Dir: t.TempDir(), Params: params})
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Close()
	// Quotes are signed with the provider's libp2p key (protocol.md §14.1).
	srv, err := p2p.NewClientHost(ctx, p2p.WithClientListen("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	rawKey, err := srv.Host().Peerstore().PrivKey(srv.ID()).Raw()
	if err != nil {
		t.Fatal(err)
	}
	qk := ed25519.PrivateKey(rawKey)
	pk, _ := crypto.GenerateKey()
	payee := crypto.PubkeyToAddress(pk.PublicKey)
	sp, err := node.StartStoragePayments(ctx, prov, node.StoragePaymentsConfig{DataDir: t.TempDir(), RPC: []string{chain.URL},
		ChainID: devchain.ChainID, Confirmations: 2, Payee: payee, Price: 1000, QuoteKey: qk})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	defer srv.Close() // before the payment service
	srv.HandleStream(prov.Protocol(), prov.Serve)
	srv.HandleStream(payment.Protocol(params.ID), sp.Service.Serve)

	args := []string{"storage", "subscribe", "--data-dir", dir, "--passphrase-file", pass, "--provider", srv.Addrs()[0],
		"--network", "tanglemail-dev", "--mib", "16", "--days", "3", "--rpc", chain.URL, "--chain-id", "1337"}
	sub := func(stdin string, extra ...string) (int, string, string) {
		var o, e bytes.Buffer
		env := &cmdEnv{stdin: strings.NewReader(stdin), stdout: &o, stderr: &e, getenv: func(string) string { return "" }, stop: make(chan struct{})}
		code := run(env, append(append([]string{}, args...), extra...))
		return code, o.String(), e.String()
	}
	code, out, errOut := sub("n\n")
	if code != 0 || !strings.Contains(out, "not paid.") || !strings.Contains(out, "amount:   0.000048 IOTA") {
		t.Fatalf("declined: %d %q %q", code, out, errOut)
	}
	if s := prov.Subscriptions(); len(s) != 1 || s[0].State.String() == "active" {
		t.Fatalf("after declining: %+v", s)
	}
	code, out, errOut = sub("", "--yes")
	if code != 0 || !strings.Contains(out, "paid: transaction 0x") || !strings.Contains(out, "active until") {
		t.Fatalf("--yes: %d %q %q", code, out, errOut)
	}
	t.Logf("subscribe output:\n%s", out)
	s := prov.Subscriptions()
	if len(s) != 1 || time.Until(s[0].Expires) < 71*time.Hour {
		t.Fatalf("provider: %+v", s)
	}
	first := s[0].Expires
	code, out, errOut = sub("", "--yes")
	if code != 0 || !strings.Contains(out, "renewing subscription") {
		t.Fatalf("renew: %d %q %q", code, out, errOut)
	}
	s = prov.Subscriptions()
	if s[0].Expires.Sub(first) < 71*time.Hour || s[0].QuotaBytes != 16<<20 {
		t.Fatalf("renewal did not extend: %v → %v (quota %d)", first, s[0].Expires, s[0].QuotaBytes)
	}
	// Top-up: a larger quota, paid for 1 more day at 32 MiB.
	second := s[0].Expires
	code, out, errOut = sub("", "--yes", "--mib", "32", "--days", "1")
	if code != 0 || !strings.Contains(out, "renewing subscription") || !strings.Contains(out, "32 MiB for 1 days") ||
		!strings.Contains(out, "amount:   0.000032 IOTA") {
		t.Fatalf("top-up: %d %q %q", code, out, errOut)
	}
	if s := prov.Subscriptions(); s[0].QuotaBytes != 32<<20 || s[0].Expires.Sub(second) < 23*time.Hour || s[0].State.String() != "active" {
		t.Fatalf("top-up: %+v (was until %v)", s[0], second)
	}
	// A quota above the provider's bound is refused before anything is paid.
	if code, out, errOut = sub("", "--yes", "--mib", "4096", "--days", "1"); code == 0 || !strings.Contains(errOut, "above the provider's") {
		t.Fatalf("top-up beyond the bound: %d %q %q", code, out, errOut)
	}
	if fi, err := os.Stat(filepath.Join(dir, node.LightFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%v %v", fi, err)
	}
	// The subscriber's view: usage, quota, paid until, and the wallet's balance.
	view := []string{"storage", "subscriptions", "--data-dir", dir, "--passphrase-file", pass, "--network", "tanglemail-dev",
		"--rpc", chain.URL, "--chain-id", "1337"}
	code, out, errOut = runCLI(t, nil, append(view, "--json")...)
	var got struct {
		Subscriptions []heldJSON
		Wallet        struct{ Address, Balance string }
	}
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got.Subscriptions) != 1 {
		t.Fatalf("subscriptions --json: %d %q %q %v", code, out, errOut, err)
	}
	if h := got.Subscriptions[0]; h.State != "active" || h.QuotaBytes != 32<<20 || h.PaidUntil == "" || h.Provider != srv.Addrs()[0] ||
		!strings.EqualFold(got.Wallet.Address, w.Address) || !strings.HasSuffix(got.Wallet.Balance, " IOTA") {
		t.Fatalf("subscriptions --json: %+v", got)
	}
	code, out, errOut = runCLI(t, nil, view...)
	if code != 0 || !strings.Contains(out, "active, 0 B of 32.0 MiB used, paid until") || !strings.Contains(out, "days left") ||
		!strings.Contains(out, " IOTA") {
		t.Fatalf("subscriptions: %d %q %q", code, out, errOut)
	}
	t.Logf("storage subscriptions:\n%s", out)

	// The light client finds the paid subscription in light.db (one place for subscriptions).
	if saved, err := node.SavedProviders(dir); err != nil || len(saved) != 1 || saved[0] != srv.Addrs()[0] {
		t.Fatalf("saved providers %q %v", saved, err)
	}
}
