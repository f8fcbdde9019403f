package submission

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/outbox"
)

// relayRcpt accepts an Internet recipient when the node has a relay gateway (protocol.md §15.4):
// the message will reach it through the gateway. A repeated one (any case) is accepted once.
func (s *session) relayRcpt(to string) bool {
	if s.srv.opts.RelayGateway.Key == nil || mail.CheckInternetAddress(to) != nil {
		return false
	}
	for _, r := range s.inet {
		if strings.EqualFold(r, to) {
			return true
		}
	}
	s.inet = append(s.inet, to)
	return true
}

// submitRelay files the Sent copy and queues the message for the tangle recipients (if any) and the
// relay message (protocol.md §15.4) for the gateway, in one store transaction (outbox.QueueRelay). A
// spooled message (Message.Text) is read into memory whole.
func (b StoreBackend) submitRelay(ctx context.Context, s Message) (string, error) {
	if b.Store == nil {
		return "", errors.New("submission: StoreBackend without a store")
	}
	if s.RelayVia.Key == nil {
		return "", errors.New("submission: Internet recipients without a relay gateway")
	}
	raw := s.SentCopy
	if raw == nil {
		raw = s.Raw
	}
	if s.Text != nil {
		// A spooled message: the relay message is built in memory (the Sent copy and the tangle
		// recipients' item share its bytes), so the text is read whole here, at most
		// Options.MaxMessageBytes; without this the relay message and the Sent copy would hold
		// only the header.
		text, err := io.ReadAll(s.Text)
		if err != nil {
			return "", fmt.Errorf("submission: reading the spooled text: %w", err)
		}
		raw = append(append(make([]byte, 0, len(raw)+len(text)), raw...), text...)
	}
	rcpts := make([]string, len(s.Rcpts))
	for i, a := range s.Rcpts {
		rcpts[i] = a.Mail()
	}
	r, err := outbox.QueueRelay(ctx, b.Store, s.From.Mail(), rcpts, s.Internet, s.RelayVia.Mail(), raw)
	if err != nil {
		return "", err
	}
	id := r.OutboxID
	return strconv.FormatInt(int64(id), 10), nil
}
