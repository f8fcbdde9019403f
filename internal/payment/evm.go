package payment

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	ethereum "github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
)

// EVMClient is the part of go-ethereum's ethclient.Client the EVM rail uses; the simulated backend's
// client (ethclient/simulated) has it too.
type EVMClient interface {
	ChainID(ctx context.Context) (*big.Int, error)
	BlockNumber(ctx context.Context) (uint64, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	TransactionByHash(ctx context.Context, hash common.Hash) (*types.Transaction, bool, error)
	TransactionReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error)
	SuggestGasPrice(ctx context.Context) (*big.Int, error)
	EstimateGas(ctx context.Context, msg ethereum.CallMsg) (uint64, error)
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	SendTransaction(ctx context.Context, tx *types.Transaction) error
	BalanceAt(ctx context.Context, account common.Address, blockNumber *big.Int) (*big.Int, error)
}

// Endpoint is one JSON-RPC endpoint: a name for messages (its URL) and a client.
type Endpoint struct {
	Name   string
	Client EVMClient
}

// Retry says how each call to an endpoint is retried when the endpoint is down or slow.
type Retry struct {
	Attempts    int           // tries per call, ≥ 1
	Base, Max   time.Duration // backoff: Base, 2·Base, 4·Base, … capped at Max
	CallTimeout time.Duration // one try
}

// DefaultRetry: 5 tries over about 3 s, 10 s per try.
var DefaultRetry = Retry{Attempts: 5, Base: 200 * time.Millisecond, Max: 2 * time.Second, CallTimeout: 10 * time.Second}

// DefaultConfirmations is the number of blocks (the payment's own included) a payment needs by default.
const DefaultConfirmations = 2

// EVMConfig configures the EVM rail.
type EVMConfig struct {
	ChainID       uint64 // the chain every endpoint must report (IOTA EVM: 8822)
	Confirmations uint64 // blocks a payment needs, its own included; 0 means DefaultConfirmations
	// Key is the wallet's key (nil: verify only). Payee is its address, or PayeeAddress if set.
	Key          *ecdsa.PrivateKey
	PayeeAddress *common.Address
	Ledger       *Ledger // records sent transactions: Pay needs it
	Retry        Retry   // zero: DefaultRetry
	// OnRetry, if set, hears about each failed try that will be retried (the subscriber is told).
	OnRetry func(endpoint, what string, attempt int, err error)
	Now     func() time.Time
}

// EVM is the rail over Ethereum JSON-RPC. Every question goes to every endpoint and the answers must
// agree (ErrDisagree otherwise).
type EVM struct {
	cfg    EVMConfig
	eps    []Endpoint
	closer []func()
	payMu  sync.Mutex
	// nextNonce is one past the nonce of the last transaction this EVM signed (under payMu): a node's
	// pending nonce can lag a transaction it has just accepted, and reusing the nonce would make the
	// second payment a refused "replacement transaction".
	nextNonce uint64
}

// NewEVM makes the rail over already connected endpoints.
func NewEVM(cfg EVMConfig, eps ...Endpoint) (*EVM, error) {
	if len(eps) == 0 {
		return nil, errors.New("payment: no JSON-RPC endpoint configured")
	}
	if cfg.ChainID == 0 {
		return nil, errors.New("payment: no chain id configured")
	}
	if cfg.Confirmations == 0 {
		cfg.Confirmations = DefaultConfirmations
	}
	if cfg.Retry.Attempts == 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &EVM{cfg: cfg, eps: eps}, nil
}

// DialEVM connects to the JSON-RPC endpoints at urls (http://, https://, ws://, or an IPC path).
// Connecting over HTTP sends nothing: a down endpoint shows at the first call.
func DialEVM(ctx context.Context, cfg EVMConfig, urls ...string) (*EVM, error) {
	var eps []Endpoint
	var closers []func()
	for _, u := range urls {
		c, err := ethclient.DialContext(ctx, u)
		if err != nil {
			for _, f := range closers {
				f()
			}
			return nil, fmt.Errorf("%w: %s: %v", ErrEndpoint, u, err)
		}
		eps = append(eps, Endpoint{Name: u, Client: c})
		closers = append(closers, c.Close)
	}
	e, err := NewEVM(cfg, eps...)
	if err != nil {
		for _, f := range closers {
			f()
		}
		return nil, err
	}
	e.closer = closers
	return e, nil
}

// Close closes the connections DialEVM made.
func (e *EVM) Close() {
	for _, f := range e.closer {
		f()
	}
}

func (e *EVM) Kind() RailKind  { return RailEVM }
func (e *EVM) ChainID() uint64 { return e.cfg.ChainID }

// Address is the wallet's address (zero without a key).
func (e *EVM) Address() common.Address {
	if e.cfg.Key == nil {
		return common.Address{}
	}
	return crypto.PubkeyToAddress(e.cfg.Key.PublicKey)
}

// Payee is the address quotes name as payee.
func (e *EVM) Payee() []byte {
	if e.cfg.PayeeAddress != nil {
		return e.cfg.PayeeAddress.Bytes()
	}
	return e.Address().Bytes()
}

// Confirmations is the number of blocks a payment needs.
func (e *EVM) Confirmations() uint64 { return e.cfg.Confirmations }

// permanent reports whether err is an answer (a JSON-RPC error object, not found), not a failure to
// get one.
func permanent(err error) bool {
	var re rpc.Error
	return errors.Is(err, ethereum.NotFound) || errors.As(err, &re)
}

// call asks one endpoint, retrying transient failures with backoff.
func call[T any](ctx context.Context, e *EVM, ep Endpoint, what string, f func(context.Context, EVMClient) (T, error)) (T, error) {
	var zero T
	delay := e.cfg.Retry.Base
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, e.cfg.Retry.CallTimeout)
		v, err := f(cctx, ep.Client)
		cancel()
		if err == nil {
			return v, nil
		}
		if permanent(err) {
			return zero, err
		}
		if attempt >= e.cfg.Retry.Attempts || ctx.Err() != nil {
			return zero, fmt.Errorf("%w: %s: %s failed after %d tries: %v", ErrEndpoint, ep.Name, what, attempt, err)
		}
		if e.cfg.OnRetry != nil {
			e.cfg.OnRetry(ep.Name, what, attempt, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, fmt.Errorf("%w: %s: %s: %v (%v)", ErrEndpoint, ep.Name, what, ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, e.cfg.Retry.Max)
	}
}

// each asks every endpoint (concurrently when there are several) and returns their answers in order.
func each[T any](ctx context.Context, e *EVM, what string, f func(context.Context, EVMClient) (T, error)) ([]T, error) {
	out := make([]T, len(e.eps))
	if len(e.eps) == 1 {
		v, err := call(ctx, e, e.eps[0], what, f)
		out[0] = v
		return out, err
	}
	errs := make([]error, len(e.eps))
	var wg sync.WaitGroup
	for i, ep := range e.eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = call(ctx, e, ep, what, f)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (e *EVM) disagree(what string, i int, a, b any) error {
	return fmt.Errorf("%w on %s: %s says %v, %s says %v", ErrDisagree, what, e.eps[0].Name, a, e.eps[i].Name, b)
}

// checkChain checks that every endpoint serves chain want.
func (e *EVM) checkChain(ctx context.Context, want uint64) error {
	ids, err := each(ctx, e, "eth_chainId", func(ctx context.Context, c EVMClient) (*big.Int, error) { return c.ChainID(ctx) })
	if err != nil {
		return err
	}
	for i, id := range ids {
		if !id.IsUint64() || id.Uint64() != want {
			return fmt.Errorf("%w: endpoint %s serves chain id %v, want %d", ErrWrongChain, e.eps[i].Name, id, want)
		}
	}
	return nil
}

// Verify checks that tx pays q, in the order of protocol.md §14.3.
func (e *EVM) Verify(ctx context.Context, id TxID, q *Quote) (Payment, error) {
	p := Payment{Tx: id}
	if q.Rail != RailEVM {
		return p, fmt.Errorf("%w: quote for rail %d", ErrWrongRail, q.Rail)
	}
	if q.ChainID != e.cfg.ChainID {
		return p, fmt.Errorf("%w: the quote is for chain id %d, this provider is paid on %d", ErrWrongChain, q.ChainID, e.cfg.ChainID)
	}
	if err := e.checkChain(ctx, q.ChainID); err != nil {
		return p, err
	}
	h := common.Hash(id)
	type txAns struct {
		tx      *types.Transaction
		pending bool
	}
	txs, err := each(ctx, e, "eth_getTransactionByHash", func(ctx context.Context, c EVMClient) (txAns, error) {
		tx, pending, err := c.TransactionByHash(ctx, h)
		return txAns{tx, pending}, err
	})
	if errors.Is(err, ethereum.NotFound) {
		return p, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return p, err
	}
	pending := false
	for i, a := range txs {
		// The hash covers every field: an endpoint cannot alter a transaction it returns.
		if a.tx.Hash() != h {
			return p, fmt.Errorf("%w: %s returned a transaction whose hash is not %s", ErrDisagree, e.eps[i].Name, id)
		}
		pending = pending || a.pending
	}
	tx := txs[0].tx
	if cid := tx.ChainId(); cid == nil || !cid.IsUint64() || cid.Uint64() != q.ChainID || !tx.Protected() {
		return p, fmt.Errorf("%w: transaction signed for chain id %v, the quote is for %d", ErrWrongChain, cid, q.ChainID)
	}
	if tx.To() == nil || !bytes.Equal(tx.To().Bytes(), q.Address) {
		return p, fmt.Errorf("%w: it pays %v, the quote names 0x%x", ErrWrongRecipient, tx.To(), q.Address)
	}
	want := q.Amount.Wei()
	p.Value = new(big.Int).Set(tx.Value())
	if tx.Value().Cmp(want) < 0 {
		return p, fmt.Errorf("%w: paid %s, quoted %s", ErrUnderpaid, FormatIOTA(tx.Value()), FormatIOTA(want))
	}
	if !bytes.Equal(tx.Data(), q.Calldata()) {
		return p, fmt.Errorf("%w (calldata 0x%x)", ErrNotThisQuote, tx.Data())
	}
	if pending {
		return p, fmt.Errorf("%w: %s", ErrPending, id)
	}
	rcs, err := each(ctx, e, "eth_getTransactionReceipt", func(ctx context.Context, c EVMClient) (*types.Receipt, error) {
		return c.TransactionReceipt(ctx, h)
	})
	if errors.Is(err, ethereum.NotFound) {
		// In a block (no endpoint says pending), its receipt not served yet: a confirmation question,
		// not "pending", which after the quote's expiry would mean too late (Verifier).
		return p, fmt.Errorf("%w: %s is in a block whose receipt is not served yet", ErrNotConfirmed, id)
	}
	if err != nil {
		return p, err
	}
	rc := rcs[0]
	for i, r := range rcs[1:] {
		if r.Status != rc.Status || r.BlockHash != rc.BlockHash || r.BlockNumber.Cmp(rc.BlockNumber) != 0 {
			return p, e.disagree("the receipt of "+id.String(), i+1, rc.BlockHash, r.BlockHash)
		}
	}
	if rc.Status != types.ReceiptStatusSuccessful {
		return p, fmt.Errorf("%w: %s", ErrReverted, id)
	}
	bn := rc.BlockNumber
	p.Block = bn.Uint64()
	hdrs, err := each(ctx, e, "eth_getBlockByNumber", func(ctx context.Context, c EVMClient) (*types.Header, error) {
		return c.HeaderByNumber(ctx, bn)
	})
	if errors.Is(err, ethereum.NotFound) {
		return p, fmt.Errorf("%w: block %v is not canonical any more (reorganisation)", ErrPending, bn)
	}
	if err != nil {
		return p, err
	}
	for i, hd := range hdrs {
		if hd.Hash() != rc.BlockHash {
			return p, fmt.Errorf("%w: %s has block %s at height %v, the receipt names %s (reorganisation or a lying endpoint)",
				ErrDisagree, e.eps[i].Name, hd.Hash(), bn, rc.BlockHash)
		}
	}
	p.BlockTime = time.Unix(int64(hdrs[0].Time), 0).UTC()
	if hdrs[0].Time >= uint64(q.Expires.Unix()) {
		return p, fmt.Errorf("%w: mined %s, the quote expired %s", ErrPaidLate, p.BlockTime.Format(time.RFC3339), q.Expires.UTC().Format(time.RFC3339))
	}
	heads, err := each(ctx, e, "eth_blockNumber", func(ctx context.Context, c EVMClient) (uint64, error) { return c.BlockNumber(ctx) })
	if err != nil {
		return p, err
	}
	head := heads[0]
	for _, hn := range heads[1:] {
		head = min(head, hn)
	}
	if head >= p.Block {
		p.Confirmations = head - p.Block + 1
	}
	if p.Confirmations < e.cfg.Confirmations {
		return p, fmt.Errorf("%w: %d of %d", ErrNotConfirmed, p.Confirmations, e.cfg.Confirmations)
	}
	return p, nil
}

// Balance returns the wallet's balance in wei, as the first endpoint reports it.
func (e *EVM) Balance(ctx context.Context) (*big.Int, error) {
	if e.cfg.Key == nil {
		return nil, ErrNoWallet
	}
	return e.BalanceOf(ctx, e.Address())
}

// BalanceOf returns addr's balance in wei at the latest block, as the first endpoint reports it (the
// endpoints may be a block apart, so their balances are not compared).
func (e *EVM) BalanceOf(ctx context.Context, addr common.Address) (*big.Int, error) {
	return call(ctx, e, e.eps[0], "eth_getBalance", func(ctx context.Context, c EVMClient) (*big.Int, error) {
		return c.BalanceAt(ctx, addr, nil)
	})
}

// GasPrice returns the chain's gas price (eth_gasPrice), the highest the endpoints report.
func (e *EVM) GasPrice(ctx context.Context) (*big.Int, error) {
	ps, err := each(ctx, e, "eth_gasPrice", func(ctx context.Context, c EVMClient) (*big.Int, error) { return c.SuggestGasPrice(ctx) })
	if err != nil {
		return nil, err
	}
	best := ps[0]
	for _, p := range ps[1:] {
		if p.Cmp(best) > 0 {
			best = p
		}
	}
	return best, nil
}

// Unsettled implements Resumable (nothing without a ledger).
func (e *EVM) Unsettled(ctx context.Context, sub SubID) (*Quote, TxID, bool, error) {
	if e.cfg.Ledger == nil {
		return nil, TxID{}, false, nil
	}
	return e.cfg.Ledger.Unsettled(ctx, sub)
}

// Settle implements Resumable.
func (e *EVM) Settle(ctx context.Context, tx TxID) error {
	if e.cfg.Ledger == nil {
		return nil
	}
	return e.cfg.Ledger.Settle(ctx, tx)
}

// EstimateFee returns the gas and gas price paying q would take.
func (e *EVM) EstimateFee(ctx context.Context, q *Quote) (gas uint64, price *big.Int, err error) {
	price, err = e.GasPrice(ctx)
	if err != nil {
		return 0, nil, err
	}
	to := common.BytesToAddress(q.Address)
	msg := ethereum.CallMsg{From: e.Address(), To: &to, Value: q.Amount.Wei(), Data: q.Calldata(), GasPrice: price}
	gas, err = call(ctx, e, e.eps[0], "eth_estimateGas", func(ctx context.Context, c EVMClient) (uint64, error) {
		return c.EstimateGas(ctx, msg)
	})
	return gas, price, err
}

// Pay pays q once (see Rail.Pay): the signed transaction is recorded in the ledger before it is sent,
// and paying the same quote again re-sends that transaction.
func (e *EVM) Pay(ctx context.Context, q *Quote) (TxID, error) {
	var id TxID
	if e.cfg.Key == nil {
		return id, ErrNoWallet
	}
	if e.cfg.Ledger == nil {
		return id, errors.New("payment: Pay needs a ledger (to stay idempotent)")
	}
	if q.Rail != RailEVM || q.ChainID != e.cfg.ChainID {
		return id, fmt.Errorf("%w: the quote is for rail %d chain id %d; this wallet pays on chain id %d", ErrWrongRail, q.Rail, q.ChainID, e.cfg.ChainID)
	}
	e.payMu.Lock()
	defer e.payMu.Unlock()
	if id, raw, ok, err := e.cfg.Ledger.SentTx(ctx, q.Digest()); err != nil {
		return id, err
	} else if ok {
		return id, e.send(ctx, id, raw)
	}
	if !e.cfg.Now().Before(q.Expires) {
		return id, fmt.Errorf("%w (expired %s)", ErrQuoteExpired, q.Expires.UTC().Format(time.RFC3339))
	}
	if err := e.checkChain(ctx, q.ChainID); err != nil {
		return id, err
	}
	from := e.Address()
	nonces, err := each(ctx, e, "eth_getTransactionCount", func(ctx context.Context, c EVMClient) (uint64, error) {
		return c.PendingNonceAt(ctx, from)
	})
	if err != nil {
		return id, err
	}
	nonce := nonces[0]
	for _, n := range nonces[1:] {
		nonce = max(nonce, n)
	}
	nonce = max(nonce, e.nextNonce)
	value := q.Amount.Wei()
	bal, err := e.Balance(ctx)
	if err != nil {
		return id, err
	}
	if bal.Cmp(value) < 0 {
		return id, fmt.Errorf("%w: %s has %s, the quote asks %s", ErrInsufficientFund, from, FormatIOTA(bal), FormatIOTA(value))
	}
	gas, price, err := e.EstimateFee(ctx, q)
	if err != nil {
		return id, fmt.Errorf("payment: estimating gas: %w", err)
	}
	need := new(big.Int).Add(value, new(big.Int).Mul(price, new(big.Int).SetUint64(gas)))
	if bal.Cmp(need) < 0 {
		return id, fmt.Errorf("%w: %s has %s, paying needs %s (amount and gas)", ErrInsufficientFund, from, FormatIOTA(bal), FormatIOTA(need))
	}
	to := common.BytesToAddress(q.Address)
	tx := types.NewTx(&types.LegacyTx{Nonce: nonce, To: &to, Value: value, Gas: gas, GasPrice: price, Data: q.Calldata()})
	signedID, raw, err := e.sign(tx)
	if err != nil {
		return id, err
	}
	id, raw, _, err = e.cfg.Ledger.RecordSent(ctx, q, signedID, raw)
	if err != nil {
		return id, err
	}
	if err := e.send(ctx, id, raw); err != nil {
		return id, err
	}
	e.nextNonce = nonce + 1
	return id, nil
}

// Cancel stops a payment this wallet sent (recorded in the ledger) that is not in a block yet: it
// sends a transaction with the same nonce, value 0, to the wallet itself, at a gas price 25 % above
// the original's (and at least the chain's), so that a miner takes it instead. It costs gas only. If
// the original is mined first, the replacement is dropped (its nonce is used): the payment stands.
func (e *EVM) Cancel(ctx context.Context, id TxID) (TxID, error) {
	var none TxID
	if e.cfg.Key == nil || e.cfg.Ledger == nil {
		return none, ErrNoWallet
	}
	raw, ok, err := e.cfg.Ledger.SentRaw(ctx, id)
	if err != nil {
		return none, err
	}
	if !ok {
		return none, fmt.Errorf("payment: %s was not sent by this wallet", id)
	}
	var orig types.Transaction
	if err := orig.UnmarshalBinary(raw); err != nil {
		return none, fmt.Errorf("payment: recorded transaction: %w", err)
	}
	// In a block at any endpoint: too late. Pending, or unknown (dropped, or not seen yet): replace it,
	// so that it can never be mined later.
	mined, err := each(ctx, e, "eth_getTransactionByHash", func(ctx context.Context, c EVMClient) (bool, error) {
		_, pending, err := c.TransactionByHash(ctx, common.Hash(id))
		if errors.Is(err, ethereum.NotFound) {
			return false, nil
		}
		return err == nil && !pending, err
	})
	if err != nil {
		return none, err
	}
	if slices.Contains(mined, true) {
		return none, ErrMined
	}
	price, err := e.GasPrice(ctx)
	if err != nil {
		return none, err
	}
	bumped := new(big.Int).Div(new(big.Int).Mul(orig.GasPrice(), big.NewInt(125)), big.NewInt(100))
	if bumped.Cmp(price) > 0 {
		price = bumped
	}
	self := e.Address()
	tx := types.NewTx(&types.LegacyTx{Nonce: orig.Nonce(), To: &self, Value: new(big.Int), Gas: 21_000, GasPrice: price})
	cid, craw, err := e.sign(tx)
	if err != nil {
		return none, err
	}
	e.payMu.Lock()
	defer e.payMu.Unlock()
	return cid, e.send(ctx, cid, craw)
}

// sign signs tx with the wallet key for the rail's chain (EIP-155) and returns its hash and encoding.
func (e *EVM) sign(tx *types.Transaction) (TxID, []byte, error) {
	signed, err := types.SignTx(tx, types.LatestSignerForChainID(new(big.Int).SetUint64(e.cfg.ChainID)), e.cfg.Key)
	if err != nil {
		return TxID{}, nil, fmt.Errorf("payment: signing: %w", err)
	}
	raw, err := signed.MarshalBinary()
	if err != nil {
		return TxID{}, nil, err
	}
	return TxID(signed.Hash()), raw, nil
}

// send broadcasts a recorded transaction to every endpoint; one that accepts it (or already has it)
// is enough.
func (e *EVM) send(ctx context.Context, id TxID, raw []byte) error {
	var tx types.Transaction
	if err := tx.UnmarshalBinary(raw); err != nil {
		return fmt.Errorf("payment: recorded transaction: %w", err)
	}
	var errs []error
	ok := false
	for _, ep := range e.eps {
		_, err := call(ctx, e, ep, "eth_sendRawTransaction", func(ctx context.Context, c EVMClient) (struct{}, error) {
			return struct{}{}, c.SendTransaction(ctx, &tx)
		})
		if err == nil || alreadySent(err) {
			ok = true
			continue
		}
		// Sent before and already mined: the node answers "nonce too low"; the chain has it.
		if _, _, err2 := ep.Client.TransactionByHash(ctx, common.Hash(id)); err2 == nil {
			ok = true
			continue
		}
		errs = append(errs, err)
	}
	if ok {
		return nil
	}
	return fmt.Errorf("payment: sending %s (recorded: paying this quote again re-sends the same transaction): %w", id, errors.Join(errs...))
}

func alreadySent(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "already known") || strings.Contains(s, "known transaction")
}

// ParseAddress parses a 0x-prefixed 20-byte EVM address.
func ParseAddress(s string) (common.Address, error) {
	if !common.IsHexAddress(s) {
		return common.Address{}, fmt.Errorf("payment: %q is not an EVM address (0x + 40 hex digits)", s)
	}
	return common.HexToAddress(s), nil
}
