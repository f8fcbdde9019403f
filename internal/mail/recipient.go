package mail

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tanglemail/tanglemail/internal/identity"
)

// ErrNotTangle is wrapped by ParseRecipient's error for an address outside the tangle domain.
var ErrNotTangle = errors.New("mail: not a tangle address")

// RecipientError says why an address cannot receive tangle mail. Its message is meant for the user
// (the submission server puts it in its 550 reply) and wraps ErrNotTangle or one of identity's
// ParseAddress errors.
type RecipientError struct {
	Address string // as given
	Err     error
}

func (e *RecipientError) Error() string {
	if errors.Is(e.Err, ErrNotTangle) {
		return fmt.Sprintf("%s is not a tangle address: tanglemail delivers only to <address>@%s",
			e.Address, identity.MailDomain)
	}
	return fmt.Sprintf("%s is not a valid tangle address: %s", e.Address,
		strings.TrimPrefix(e.Err.Error(), "identity: "))
}

func (e *RecipientError) Unwrap() error { return e.Err }

// ParseRecipient parses an addr-spec as a tangle address: "<address>@tangle", the domain in any case
// (protocol.md §8.1). It is identity.ParseAddress with the domain required: a bare address without
// "@tangle", or any other domain, is ErrNotTangle; a tangle domain with a bad address fails with
// identity's error (bad checksum, wrong prefix, …). Errors are *RecipientError.
func ParseRecipient(s string) (identity.Address, error) {
	if !strings.Contains(s, "@") {
		return identity.Address{}, &RecipientError{Address: s, Err: ErrNotTangle}
	}
	a, err := identity.ParseAddress(s)
	if errors.Is(err, identity.ErrDomain) {
		err = ErrNotTangle
	}
	if err != nil {
		return identity.Address{}, &RecipientError{Address: s, Err: err}
	}
	return a, nil
}
