package mail

import (
	"errors"
	"fmt"

	"github.com/tanglemail/tanglemail/internal/seal"
)

// Receipt content (protocol.md §10.2): version ‖ key₁ ‖ … ‖ keyₙ, each key the 32-byte replay key (the
// HPKE enc) of an envelope the receipt acknowledges.
const (
	ReceiptVersion = 1
	ReceiptKeySize = 32
	// MaxReceiptKeys is the most keys one receipt holds: its content must fit one envelope.
	MaxReceiptKeys = (seal.MaxContent - 1) / ReceiptKeySize // 1004
)

// ErrReceipt is wrapped by every ParseReceipt error.
var ErrReceipt = errors.New("mail: malformed receipt")

// EncodeReceipt returns the content of a receipt acknowledging keys (protocol.md §10.2). keys must be
// 1..MaxReceiptKeys distinct keys; callers with more split them over several receipts.
func EncodeReceipt(keys [][32]byte) ([]byte, error) {
	if len(keys) == 0 || len(keys) > MaxReceiptKeys {
		return nil, fmt.Errorf("%w: %d keys (1..%d)", ErrReceipt, len(keys), MaxReceiptKeys)
	}
	seen := make(map[[32]byte]struct{}, len(keys))
	out := make([]byte, 1, 1+ReceiptKeySize*len(keys))
	out[0] = ReceiptVersion
	for _, k := range keys {
		if _, dup := seen[k]; dup {
			return nil, fmt.Errorf("%w: repeated key", ErrReceipt)
		}
		seen[k] = struct{}{}
		out = append(out, k[:]...)
	}
	return out, nil
}

// ParseReceipt parses a receipt's content (protocol.md §10.2). It rejects, wrapping ErrReceipt: an
// unknown version, a length that is not 1 + 32·n, n = 0 or n > MaxReceiptKeys, and a repeated key. The
// keys are returned in the order of the content. It never panics.
func ParseReceipt(content []byte) ([][32]byte, error) {
	if len(content) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrReceipt)
	}
	if content[0] != ReceiptVersion {
		return nil, fmt.Errorf("%w: version %d", ErrReceipt, content[0])
	}
	body := content[1:]
	if len(body)%ReceiptKeySize != 0 {
		return nil, fmt.Errorf("%w: %d key bytes is not a multiple of %d", ErrReceipt, len(body), ReceiptKeySize)
	}
	n := len(body) / ReceiptKeySize
	if n == 0 || n > MaxReceiptKeys {
		return nil, fmt.Errorf("%w: %d keys (1..%d)", ErrReceipt, n, MaxReceiptKeys)
	}
	keys := make([][32]byte, n)
	seen := make(map[[32]byte]struct{}, n)
	for i := range keys {
		keys[i] = [32]byte(body[i*ReceiptKeySize:])
		if _, dup := seen[keys[i]]; dup {
			return nil, fmt.Errorf("%w: repeated key", ErrReceipt)
		}
		seen[keys[i]] = struct{}{}
	}
	return keys, nil
}
