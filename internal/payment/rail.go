package payment

import (
	"context"
	"encoding/hex"
	"errors"
	"math/big"
	"time"
)

// TxID identifies a payment transaction on its rail: an EVM transaction hash, or (for a Move rail) a
// transaction digest. Both are 32 bytes.
type TxID [32]byte

func (t TxID) String() string { return "0x" + hex.EncodeToString(t[:]) }

// ParseTxID parses a 0x-prefixed (or bare) 64-digit hex transaction hash.
func ParseTxID(s string) (TxID, error) {
	var t TxID
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(t) {
		return t, errors.New("payment: a transaction hash is 32 bytes in hex (0x + 64 digits)")
	}
	copy(t[:], b)
	return t, nil
}

// Rail moves and checks money on one chain. The EVM rail is the first; a Move escrow on IOTA
// Rebased implements the same interface (docs/decisions.md, "Payments").
type Rail interface {
	// Kind and ChainID say which quotes the rail can pay and verify.
	Kind() RailKind
	ChainID() uint64
	// Payee is the rail address quotes of this rail's wallet name as payee (the provider's address).
	Payee() []byte
	// Pay pays q from the rail's wallet and returns the transaction. It is idempotent per quote: paying
	// the same quote again returns the same transaction (re-sent if it is not on chain yet), never a
	// second payment. It refuses an expired quote and a quote of another rail or chain.
	Pay(ctx context.Context, q *Quote) (TxID, error)
	// Verify checks on chain that tx pays q (protocol.md §14.3) and returns what it found. It counts
	// nothing (Ledger.Claim does). Errors wrap the Err* values below; ErrPending and ErrNotConfirmed
	// are worth retrying later, ErrEndpoint after the endpoints recover.
	Verify(ctx context.Context, tx TxID, q *Quote) (Payment, error)
	// Balance returns the wallet's balance in wei (10^-18 IOTA).
	Balance(ctx context.Context) (*big.Int, error)
}

// Resumable is a rail that remembers the payments it sent (the EVM rail, in its ledger), so that a
// payment interrupted before the provider activated it is resumed, never paid again with a new quote.
type Resumable interface {
	// Unsettled returns the latest payment sent for sub and not settled, with the quote it pays.
	Unsettled(ctx context.Context, sub SubID) (q *Quote, tx TxID, ok bool, err error)
	// Settle marks the payment tx settled: activated, or refused for good.
	Settle(ctx context.Context, tx TxID) error
}

// Canceler is a rail that can stop a payment it sent that is not in a block yet (the EVM rail: a
// replacement transaction with the same nonce that pays nobody).
type Canceler interface {
	// Cancel replaces tx, if it is not in a block, and returns the replacement; ErrMined if it is.
	Cancel(ctx context.Context, tx TxID) (TxID, error)
}

// Payment is what Verify found on chain.
type Payment struct {
	Tx            TxID
	Value         *big.Int // wei
	Block         uint64
	BlockTime     time.Time
	Confirmations uint64
}

// Verification errors (protocol.md §14.3): each names one failed check.
var (
	ErrWrongChain       = errors.New("payment: transaction is on another chain than the quote")
	ErrWrongRail        = errors.New("payment: quote is for another rail or chain than this wallet's")
	ErrWrongRecipient   = errors.New("payment: transaction pays another address than the quote's")
	ErrUnderpaid        = errors.New("payment: transaction pays less than the quoted amount")
	ErrNotThisQuote     = errors.New("payment: transaction's calldata does not name this subscription's quote")
	ErrReverted         = errors.New("payment: transaction failed on chain (reverted)")
	ErrPending          = errors.New("payment: transaction is not in a block yet")
	ErrNotConfirmed     = errors.New("payment: transaction has too few confirmations yet")
	ErrNotFound         = errors.New("payment: no such transaction on chain")
	ErrPaidLate         = errors.New("payment: transaction was mined after the quote expired")
	ErrAlreadyCounted   = errors.New("payment: transaction was already counted for another subscription or quote")
	ErrEndpoint         = errors.New("payment: JSON-RPC endpoint unreachable or failing")
	ErrDisagree         = errors.New("payment: JSON-RPC endpoints disagree")
	ErrInsufficientFund = errors.New("payment: wallet balance too low for the amount and gas")
	ErrNoWallet         = errors.New("payment: this rail has no wallet key to pay with")
	ErrMined            = errors.New("payment: the transaction is in a block already: it cannot be cancelled")
)

// Retryable reports whether err may go away by itself (a payment still confirming, an endpoint down).
func Retryable(err error) bool {
	return errors.Is(err, ErrPending) || errors.Is(err, ErrNotConfirmed) || errors.Is(err, ErrEndpoint) ||
		errors.Is(err, ErrNotFound)
}
