// Package gethdev runs a real `geth --dev --dev.period 1` JSON-RPC server on 127.0.0.1 for the
// payment end-to-end tests, which run against a real geth rather than an in-process simulated chain:
// package payment's TestGethDevPayment (and BenchmarkGethSubscribeToActive) and package node's
// TestGethDevLightAfterPayment share it. It is test support only; nothing in the node imports it.
//
// geth is found on PATH or in $(go env GOPATH)/bin, where .ci/run installs the go.mod version. Without
// it a test is skipped with the command to install it, except under CI=true, where it fails. The
// server listens on loopback only, has discovery off and no peers, and is killed at the test's end
// (its output is logged if the test failed).
package gethdev

import (
	"context"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/tanglemail/tanglemail/internal/testwait"
)

// OneIOTA is 1 IOTA in wei (18 decimals).
var OneIOTA = new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil)

// Binary finds geth (see the package comment).
func Binary(t testing.TB) string {
	if p, err := exec.LookPath("geth"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "geth")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "geth not found on PATH or in $(go env GOPATH)/bin: install it with `go install github.com/ethereum/go-ethereum/cmd/geth@<go-ethereum version in go.mod>` (.ci/run does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Dev is a running `geth --dev --dev.period 1` on loopback.
type Dev struct {
	URL     string
	ChainID uint64
	RPC     *rpc.Client
	Client  *ethclient.Client
	mu      sync.Mutex // one funding transaction at a time (the dev account's nonce)
}

// Start starts geth --dev (a block a second) and waits until it answers eth_chainId.
func Start(t testing.TB) *Dev {
	t.Helper()
	bin := Binary(t)
	httpPort, authPort := testwait.FreePort(t), testwait.FreePort(t)
	var logs testwait.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--dev", "--dev.period", "1",
		"--datadir", t.TempDir(), "--ipcdisable", "--nodiscover", "--maxpeers", "0", "--port", "0",
		"--http", "--http.addr", "127.0.0.1", "--http.port", strconv.Itoa(httpPort), "--http.api", "eth,net,web3",
		"--authrpc.addr", "127.0.0.1", "--authrpc.port", strconv.Itoa(authPort), "--verbosity", "2")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("geth output:\n%s", logs.String())
		}
	})
	g := &Dev{URL: "http://127.0.0.1:" + strconv.Itoa(httpPort)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := rpc.Dial(g.URL)
		if err == nil {
			g.RPC, g.Client = c, ethclient.NewClient(c)
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			id, cerr := g.Client.ChainID(cctx)
			ccancel()
			if cerr == nil {
				g.ChainID = id.Uint64()
				break
			}
			err = cerr
			c.Close()
		}
		select {
		case err := <-exited:
			t.Fatalf("geth exited: %v\n%s", err, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("geth --dev did not answer on %s within 60 s: %v", g.URL, err)
		}
	}
	t.Cleanup(func() { g.RPC.Close() })
	return g
}

// Fund sends value from geth's unlocked dev account to a and waits until it is there.
func (g *Dev) Fund(t testing.TB, a common.Address, value *big.Int) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var accts []common.Address
	if err := g.RPC.CallContext(ctx, &accts, "eth_accounts"); err != nil || len(accts) == 0 {
		t.Fatalf("geth dev account: %v %v", accts, err)
	}
	var h common.Hash
	if err := g.RPC.CallContext(ctx, &h, "eth_sendTransaction", map[string]any{
		"from": accts[0], "to": a, "value": (*hexutil.Big)(value)}); err != nil {
		t.Fatalf("funding: %v", err)
	}
	for {
		bal, err := g.Client.BalanceAt(ctx, a, nil)
		if err == nil && bal.Cmp(value) >= 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("funding did not arrive: %v %v", bal, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
