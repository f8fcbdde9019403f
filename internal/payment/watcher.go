package payment

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tanglemail/tanglemail/internal/metrics"
)

// DefaultBalanceInterval is how often a BalanceWatcher reads the balance by default.
const DefaultBalanceInterval = time.Minute

// ErrNoWalletYet is a BalanceWatcher's error while the data directory has no wallet file.
var ErrNoWalletYet = errors.New("payment: no wallet in the data directory yet (tanglemail wallet creates one)")

// BalanceWatcherConfig configures a BalanceWatcher.
type BalanceWatcherConfig struct {
	ChainID uint64 // the chain every endpoint must serve
	// Address is the watched address. If it is zero, the address is read (without the passphrase:
	// WalletAddress) from WalletFile before each read until the file exists.
	Address    common.Address
	WalletFile string
	Interval   time.Duration // between good reads; 0: DefaultBalanceInterval
	// Backoff after a failed read: Base, 2·Base, … capped at min(Max, Interval); CallTimeout bounds
	// one read. Zero fields: 1 s, Interval, 10 s.
	Backoff Retry
	Now     func() time.Time
}

// BalanceReading is what a BalanceWatcher knows.
type BalanceReading struct {
	Address   common.Address // zero while there is no wallet
	Wei       *big.Int       // the last good value; nil before the first good read
	CheckedAt time.Time      // when Wei was read
	Err       error          // the last read's failure (Wei is then older); nil after a good read
}

// BalanceWatcher keeps a wallet's balance up to date, watch-only: it needs the address, never the
// key. Run polls eth_getBalance every Interval (after a failure, sooner, with backoff); Last never
// waits for the chain, so a status page is never held up by a down endpoint; Refresh reads now.
//
// Locking: reads of the chain are serialized (readMu), so that a slow old read cannot overwrite a
// newer one; the reading itself is under mu, held only to copy it.
type BalanceWatcher struct {
	cfg BalanceWatcherConfig
	evm *EVM

	readMu  sync.Mutex
	chainOK bool // under readMu: every endpoint was seen serving cfg.ChainID

	mu   sync.Mutex
	last BalanceReading

	reads, failures atomic.Uint64
}

// NewBalanceWatcher watches over already connected endpoints; only the first is asked for balances,
// every one for the chain id.
func NewBalanceWatcher(cfg BalanceWatcherConfig, eps ...Endpoint) (*BalanceWatcher, error) {
	if cfg.Address == (common.Address{}) && cfg.WalletFile == "" {
		return nil, errors.New("payment: a balance watcher needs an address or a wallet file")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultBalanceInterval
	}
	if cfg.Backoff.Base <= 0 {
		cfg.Backoff.Base = time.Second
	}
	if cfg.Backoff.Max <= 0 || cfg.Backoff.Max > cfg.Interval {
		cfg.Backoff.Max = cfg.Interval
	}
	if cfg.Backoff.CallTimeout <= 0 {
		cfg.Backoff.CallTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// One try per read: the watcher's own loop retries, so that Refresh answers within CallTimeout.
	e, err := NewEVM(EVMConfig{ChainID: cfg.ChainID, Retry: Retry{Attempts: 1, CallTimeout: cfg.Backoff.CallTimeout}}, eps...)
	if err != nil {
		return nil, err
	}
	w := &BalanceWatcher{cfg: cfg, evm: e}
	w.last.Address = cfg.Address
	return w, nil
}

// DialBalanceWatcher connects to the JSON-RPC endpoints at urls (DialEVM) and watches over them.
func DialBalanceWatcher(ctx context.Context, cfg BalanceWatcherConfig, urls ...string) (*BalanceWatcher, error) {
	e, err := DialEVM(ctx, EVMConfig{ChainID: cfg.ChainID}, urls...)
	if err != nil {
		return nil, err
	}
	w, err := NewBalanceWatcher(cfg, e.eps...)
	if err != nil {
		e.Close()
		return nil, err
	}
	w.evm.closer = e.closer
	return w, nil
}

// Close closes the connections DialBalanceWatcher made.
func (w *BalanceWatcher) Close() { w.evm.Close() }

// ChainID is the chain watched.
func (w *BalanceWatcher) ChainID() uint64 { return w.cfg.ChainID }

// Last is the last reading; it never waits for the chain.
func (w *BalanceWatcher) Last() BalanceReading {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.last
	if r.Wei != nil {
		r.Wei = new(big.Int).Set(r.Wei)
	}
	return r
}

// Refresh reads the balance now (after any read in progress) and returns the reading; a failed read
// keeps the last good value and returns the error too.
func (w *BalanceWatcher) Refresh(ctx context.Context) (BalanceReading, error) {
	w.readMu.Lock()
	defer w.readMu.Unlock()
	err := w.read(ctx)
	w.reads.Add(1)
	if err != nil {
		w.failures.Add(1)
	}
	return w.Last(), err
}

func (w *BalanceWatcher) read(ctx context.Context) error {
	addr := w.cfg.Address
	if addr == (common.Address{}) {
		a, err := WalletAddress(w.cfg.WalletFile)
		if errors.Is(err, os.ErrNotExist) {
			err = ErrNoWalletYet
		}
		if err != nil {
			return w.fail(err)
		}
		addr = a
		w.mu.Lock()
		w.last.Address = addr
		w.mu.Unlock()
	}
	if !w.chainOK {
		if err := w.evm.checkChain(ctx, w.cfg.ChainID); err != nil {
			return w.fail(err)
		}
		w.chainOK = true
	}
	wei, err := w.evm.BalanceOf(ctx, addr)
	if err != nil {
		return w.fail(err)
	}
	w.mu.Lock()
	w.last.Wei, w.last.CheckedAt, w.last.Err = wei, w.cfg.Now(), nil
	w.mu.Unlock()
	return nil
}

func (w *BalanceWatcher) fail(err error) error {
	err = fmt.Errorf("wallet balance: %w", err)
	w.mu.Lock()
	w.last.Err = err
	w.mu.Unlock()
	return err
}

// Run reads the balance at once, then every Interval, and after a failed read again with backoff,
// until ctx ends.
func (w *BalanceWatcher) Run(ctx context.Context) error {
	var delay time.Duration
	backoff := w.cfg.Backoff.Base
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if _, err := w.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			delay, backoff = backoff, min(2*backoff, w.cfg.Backoff.Max)
			continue
		}
		delay, backoff = w.cfg.Interval, w.cfg.Backoff.Base
	}
}

// Collectors are the watcher's Prometheus metrics (docs/api.md, "Metrics"); they carry no address.
func (w *BalanceWatcher) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		metrics.Gauge("wallet_balance_iota", "The payment wallet's balance in IOTA, as last read from the chain (0 before the first read: see tanglemail_wallet_balance_checked_seconds).",
			func() float64 {
				r := w.Last()
				if r.Wei == nil {
					return 0
				}
				f, _ := new(big.Rat).SetFrac(r.Wei, big.NewInt(1e18)).Float64()
				return f
			}),
		metrics.Gauge("wallet_balance_checked_seconds", "Unix time of the last good read of the wallet's balance (0: never).",
			func() float64 {
				if r := w.Last(); !r.CheckedAt.IsZero() {
					return float64(r.CheckedAt.UnixNano()) / 1e9
				}
				return 0
			}),
		metrics.Counter("wallet_balance_reads", "Reads of the wallet's balance from the chain.", w.reads.Load),
		metrics.Counter("wallet_balance_read_errors", "Failed reads of the wallet's balance (endpoint down, wrong chain, no wallet yet).", w.failures.Load),
	}
}
