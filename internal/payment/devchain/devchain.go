// Package devchain runs an EVM development chain in-process — go-ethereum's simulated backend, served
// over JSON-RPC on a loopback port — with funded accounts and a block every Period: what `tanglemail
// devnet` pays on, and what tests that need a JSON-RPC URL use when geth is not wanted. It is no mock:
// a real (single-node) go-ethereum chain with its transaction pool, EVM and state.
//
// Chain.Close stops the block loop, then the node. Commit may be called concurrently with the loop.
package devchain

import (
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/eth/ethconfig"
	"github.com/ethereum/go-ethereum/ethclient/simulated"
	"github.com/ethereum/go-ethereum/node"
)

// ChainID is the simulated backend's chain id.
const ChainID = 1337

// Config says what to fund and how often to make blocks.
type Config struct {
	Funded  []common.Address
	Balance *big.Int      // each funded account's balance in wei (default 1,000 IOTA)
	Period  time.Duration // a block every Period (0: only on Commit)
}

// Chain is a running dev chain.
type Chain struct {
	URL string // http://127.0.0.1:port

	sim  *simulated.Backend
	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}
}

// Start starts a dev chain listening on a free loopback port.
func Start(cfg Config) (*Chain, error) {
	bal := cfg.Balance
	if bal == nil {
		bal = new(big.Int).Mul(big.NewInt(1000), new(big.Int).Exp(big.NewInt(10), big.NewInt(18), nil))
	}
	alloc := types.GenesisAlloc{}
	for _, a := range cfg.Funded {
		alloc[a] = types.Account{Balance: bal}
	}
	var (
		sim  *simulated.Backend
		port int
		err  error
	)
	for range 5 { // the port is chosen, freed and taken again by the node: retry if someone took it
		if port, err = freePort(); err != nil {
			return nil, err
		}
		sim, err = newBackend(alloc, port)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	c := &Chain{URL: "http://127.0.0.1:" + strconv.Itoa(port), sim: sim, stop: make(chan struct{}), done: make(chan struct{})}
	go c.loop(cfg.Period)
	return c, nil
}

func newBackend(alloc types.GenesisAlloc, port int) (sim *simulated.Backend, err error) {
	defer func() {
		if r := recover(); r != nil { // NewBackend panics when the node cannot start (port taken)
			err = fmt.Errorf("devchain: starting the chain on port %d: %v", port, r)
		}
	}()
	return simulated.NewBackend(alloc, func(nc *node.Config, ec *ethconfig.Config) {
		nc.HTTPHost = "127.0.0.1"
		nc.HTTPPort = port
		nc.HTTPModules = []string{"eth", "net", "web3"}
		nc.HTTPVirtualHosts = []string{"localhost", "127.0.0.1"}
	}), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Chain) loop(period time.Duration) {
	defer close(c.done)
	if period <= 0 {
		<-c.stop
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.Commit()
		}
	}
}

// Commit makes a block now.
func (c *Chain) Commit() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sim != nil {
		c.sim.Commit()
	}
}

// Client is the chain's in-process client.
func (c *Chain) Client() simulated.Client { return c.sim.Client() }

// Close stops the chain.
func (c *Chain) Close() error {
	select {
	case <-c.stop:
		return errors.New("devchain: closed twice")
	default:
	}
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.sim.Close()
	c.sim = nil
	return err
}
