package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tanglemail/tanglemail/internal/payment"
	"github.com/tanglemail/tanglemail/internal/storage"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
)

// PaymentFile is the payment ledger in the data directory (package payment).
const PaymentFile = "payment.db"

// StoragePaymentsConfig configures paid storage on a provider (issue 10, protocol.md §14).
type StoragePaymentsConfig struct {
	DataDir       string
	RPC           []string // JSON-RPC endpoints of the payment chain; all must agree
	ChainID       uint64
	Confirmations uint64
	Payee         common.Address     // where subscribers pay
	Price         payment.Nanos      // per MiB·day
	QuoteKey      ed25519.PrivateKey // signs quotes (the node's key)
	QuoteTTL      time.Duration
	Retry         payment.Retry
	Now           func() time.Time
}

// StoragePayments is a storage provider's payment service: it quotes the provider's subscriptions
// and activates one (storage.Provider.Activate) only after its payment is verified on chain.
type StoragePayments struct {
	Service  *payment.Service
	verifier *payment.Verifier
	rail     *payment.EVM
	ledger   *payment.Ledger
}

// StartStoragePayments opens the ledger, dials the chain endpoints and activates any payment counted
// but not activated before a crash. Serve Service.Serve on payment.Protocol(netID).
func StartStoragePayments(ctx context.Context, p *storage.Provider, cfg StoragePaymentsConfig) (*StoragePayments, error) {
	if cfg.Price == 0 || len(cfg.RPC) == 0 || cfg.Payee == (common.Address{}) {
		return nil, errors.New("paid storage needs a price per MiB·day, a payment address and a payment chain endpoint")
	}
	led, err := payment.OpenLedger(filepath.Join(cfg.DataDir, PaymentFile))
	if err != nil {
		return nil, err
	}
	payee := cfg.Payee
	rail, err := payment.DialEVM(ctx, payment.EVMConfig{ChainID: cfg.ChainID, Confirmations: cfg.Confirmations, PayeeAddress: &payee,
		Retry: cfg.Retry, Now: cfg.Now}, cfg.RPC...)
	if err != nil {
		led.Close()
		return nil, err
	}
	v := &payment.Verifier{Rail: rail, Ledger: led, QuoteKey: cfg.QuoteKey.Public().(ed25519.PublicKey), Now: cfg.Now,
		Activate: func(ctx context.Context, id payment.SubID, until time.Time, mib uint32) error {
			return p.ActivateQuota(ctx, wire.SubID(id), until, mib)
		}}
	if _, err := v.Resume(ctx); err != nil {
		rail.Close()
		led.Close()
		return nil, fmt.Errorf("paid storage: activating payments counted before a restart: %w", err)
	}
	svc, err := payment.NewService(payment.ServiceConfig{Rail: rail, Verifier: v, QuoteKey: cfg.QuoteKey, Price: cfg.Price,
		Needed: uint32(rail.Confirmations()), QuoteTTL: cfg.QuoteTTL, Now: cfg.Now,
		CanRaise: func(_ context.Context, id payment.SubID, mib uint32) error { return p.CanRaise(wire.SubID(id), mib) },
		SubQuota: func(_ context.Context, id payment.SubID) (uint32, bool) {
			s, err := p.Lookup(wire.SubID(id))
			if err != nil {
				return 0, false
			}
			return uint32((s.QuotaBytes + 1<<20 - 1) >> 20), true
		}})
	if err != nil {
		rail.Close()
		led.Close()
		return nil, err
	}
	return &StoragePayments{Service: svc, verifier: v, rail: rail, ledger: led}, nil
}

// Collectors are the payment metrics (register them with the node's /metrics).
func (s *StoragePayments) Collectors() []prometheus.Collector { return s.verifier.Collectors() }

// Close closes the endpoints and the ledger.
func (s *StoragePayments) Close() error {
	s.rail.Close()
	return s.ledger.Close()
}

// startStoragePayments starts paid storage on the node's provider (StorageConfig.Payments): quotes are
// signed with the node's libp2p key (the peer id subscribers dial), and the payment protocol is served
// beside the storage protocol.
func (n *Node) startStoragePayments(side *storageSide) error {
	pc := n.cfg.Storage.Payments
	if pc == nil {
		return nil
	}
	h := n.net.Host()
	priv := h.Peerstore().PrivKey(h.ID())
	raw, err := priv.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return errors.New("paid storage: the node's libp2p key is not Ed25519")
	}
	cfg := *pc
	cfg.DataDir = n.cfg.DataDir
	cfg.QuoteKey = ed25519.PrivateKey(raw)
	if cfg.Now == nil {
		cfg.Now = n.cfg.Storage.Now
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sp, err := StartStoragePayments(ctx, side.p, cfg)
	if err != nil {
		return fmt.Errorf("paid storage: %w", err)
	}
	side.pay = sp
	if n.metrics != nil {
		n.metrics.MustRegister(sp.Collectors()...)
	}
	n.net.HandleStream(payment.Protocol(n.cfg.Network.ID), sp.Service.Serve)
	n.log.Info("paid storage started", "chain_id", cfg.ChainID, "price_nanos_per_mib_day", uint64(cfg.Price))
	return nil
}
