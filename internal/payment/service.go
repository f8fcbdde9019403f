package payment

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/wirebuf"
)

// Protocol is the payment stream protocol of network netID (protocol.md §14.5).
func Protocol(netID tangle.NetworkID) string { return p2p.ProtocolPrefix(netID) + "/pay/1" }

// Message types (protocol.md §14.5).
const (
	msgTermsReq  = 0x01
	msgQuoteReq  = 0x02
	msgSubmit    = 0x03
	msgTerms     = 0x81
	msgQuote     = 0x82
	msgResult    = 0x83
	msgError     = 0x7f
	maxFrameBody = 1024
	maxErrMsg    = 512
)

// Error codes of an error message (protocol.md §14.5).
const (
	CodeMalformed   = 1 // the request could not be parsed
	CodeNotFound    = 2 // no such subscription
	CodeRefused     = 3 // the payment does not pay the quote (not worth retrying)
	CodePending     = 4 // not confirmed yet: submit again later
	CodeUnavailable = 5 // the provider cannot reach its chain endpoints: submit again later
	CodeInternal    = 6
)

// RemoteError is an error message from the provider.
type RemoteError struct {
	Code uint8
	Msg  string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("provider: %s (code %d)", e.Msg, e.Code) }

// Retryable reports whether submitting again later may succeed.
func (e *RemoteError) Retryable() bool { return e.Code == CodePending || e.Code == CodeUnavailable }

// Final reports whether the provider refused the payment for good (it does not pay the quote, or the
// quote is malformed): the payment is settled, never to be submitted again.
func (e *RemoteError) Final() bool { return e.Code == CodeRefused || e.Code == CodeMalformed }

// Terms are what a provider announces: its price and where to pay.
type Terms struct {
	Rail          RailKind
	ChainID       uint64
	PricePerMiB   Nanos // per MiB·day
	Address       []byte
	Confirmations uint32
	QuoteKey      ed25519.PublicKey
}

// Result is the provider's answer to a submitted payment.
type Result struct {
	Active        bool
	Confirmations uint32
	Needed        uint32
	PaidUntil     time.Time
}

func writeFrame(w io.Writer, typ byte, body []byte) error {
	if len(body) > maxFrameBody {
		return fmt.Errorf("payment: frame of %d bytes", len(body))
	}
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, 5+len(body)), uint32(1+len(body)))
	b = append(b, typ)
	_, err := w.Write(append(b, body...))
	return err
}

// readFrame reads one frame: u32 LE length (of type + body, 1…1+maxFrameBody) ‖ type ‖ body.
func readFrame(r io.Reader) (byte, []byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(h[:])
	if n < 1 || n > 1+maxFrameBody {
		return 0, nil, fmt.Errorf("%w: frame length %d", ErrMalformedFrame, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return b[0], b[1:], nil
}

// ErrMalformedFrame: a payment-protocol message could not be parsed.
var ErrMalformedFrame = errors.New("payment: malformed message")

func encodeTerms(t Terms) []byte {
	b := []byte{byte(t.Rail)}
	b = binary.LittleEndian.AppendUint64(b, t.ChainID)
	b = binary.LittleEndian.AppendUint64(b, uint64(t.PricePerMiB))
	b = append(b, byte(len(t.Address)))
	b = append(b, t.Address...)
	b = binary.LittleEndian.AppendUint32(b, t.Confirmations)
	return append(b, t.QuoteKey...)
}

func decodeTerms(body []byte) (Terms, error) {
	r := wirebuf.NewReader(body, ErrMalformedFrame)
	t := Terms{Rail: RailKind(r.U8()), ChainID: r.U64(), PricePerMiB: Nanos(r.U64())}
	t.Address = bytes.Clone(r.Take(int(r.U8())))
	t.Confirmations = r.U32()
	t.QuoteKey = bytes.Clone(r.Take(ed25519.PublicKeySize))
	if r.Err() != nil || r.Len() != 0 || len(t.Address) == 0 || len(t.Address) > maxAddrLen {
		return Terms{}, fmt.Errorf("%w: terms", ErrMalformedFrame)
	}
	return t, nil
}

func encodeResult(r Result) []byte {
	b := []byte{0}
	if r.Active {
		b[0] = 1
	}
	b = binary.LittleEndian.AppendUint32(b, r.Confirmations)
	b = binary.LittleEndian.AppendUint32(b, r.Needed)
	return binary.LittleEndian.AppendUint64(b, uint64(r.PaidUntil.Unix()))
}

func decodeResult(body []byte) (Result, error) {
	r := wirebuf.NewReader(body, ErrMalformedFrame)
	a := r.U8()
	res := Result{Active: a == 1, Confirmations: r.U32(), Needed: r.U32()}
	until := r.U64()
	if r.Err() != nil || r.Len() != 0 || a > 1 || until > 1<<40 {
		return Result{}, fmt.Errorf("%w: result", ErrMalformedFrame)
	}
	res.PaidUntil = time.Unix(int64(until), 0).UTC()
	return res, nil
}

func encodeError(code uint8, msg string) []byte {
	if len(msg) > maxErrMsg {
		msg = msg[:maxErrMsg]
	}
	return append([]byte{code}, msg...)
}

// decodeMessage parses a response frame into a value or a *RemoteError (the fuzzed parser).
func decodeMessage(typ byte, body []byte) (any, error) {
	switch typ {
	case msgTerms:
		return decodeTerms(body)
	case msgQuote:
		return DecodeQuote(body)
	case msgResult:
		return decodeResult(body)
	case msgError:
		if len(body) < 1 || len(body) > 1+maxErrMsg {
			return nil, fmt.Errorf("%w: error message", ErrMalformedFrame)
		}
		return nil, &RemoteError{Code: body[0], Msg: string(bytes.ToValidUTF8(body[1:], []byte("?")))}
	}
	return nil, fmt.Errorf("%w: type 0x%02x", ErrMalformedFrame, typ)
}

// ServiceConfig configures the provider's payment service.
type ServiceConfig struct {
	Rail     Rail
	Verifier *Verifier // its Rail is Rail
	QuoteKey ed25519.PrivateKey
	Price    Nanos  // per MiB·day
	Needed   uint32 // confirmations the rail requires (shown to subscribers)
	QuoteTTL time.Duration
	MaxDays  uint32
	// CanRaise, if set, says whether subscription id's quota may grow to mib MiB (a top-up): the
	// provider's bound and disk cap, checked before a quote is signed.
	CanRaise func(ctx context.Context, id SubID, mib uint32) error
	// SubQuota returns a subscription's quota in MiB, or ok = false if it does not exist.
	SubQuota func(ctx context.Context, id SubID) (mib uint32, ok bool)
	Now      func() time.Time
	Timeout  time.Duration // per request (default 60 s)
}

// Service serves the payment protocol for a storage provider.
type Service struct{ cfg ServiceConfig }

// NewService returns the provider's payment service.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Rail == nil || cfg.Verifier == nil || cfg.QuoteKey == nil || cfg.SubQuota == nil || cfg.Price == 0 {
		return nil, errors.New("payment: service needs a rail, a verifier, a quote key, a price and SubQuota")
	}
	if cfg.QuoteTTL <= 0 {
		cfg.QuoteTTL = 15 * time.Minute
	}
	if cfg.MaxDays == 0 {
		cfg.MaxDays = 365
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	return &Service{cfg: cfg}, nil
}

// Terms returns what the provider announces.
func (s *Service) Terms() Terms {
	return Terms{Rail: s.cfg.Rail.Kind(), ChainID: s.cfg.Rail.ChainID(), PricePerMiB: s.cfg.Price, Address: s.cfg.Rail.Payee(),
		Confirmations: s.cfg.Needed, QuoteKey: s.cfg.QuoteKey.Public().(ed25519.PublicKey)}
}

// Quote makes a signed quote for days more of subscription id at its quota, or at wantMiB if that is
// more (a top-up: the paid activation raises the quota to it).
func (s *Service) Quote(ctx context.Context, id SubID, days, wantMiB uint32) (*Quote, error) {
	if days == 0 || days > s.cfg.MaxDays {
		return nil, &RemoteError{CodeMalformed, fmt.Sprintf("days must be 1…%d", s.cfg.MaxDays)}
	}
	mib, ok := s.cfg.SubQuota(ctx, id)
	if !ok {
		return nil, &RemoteError{CodeNotFound, "no such subscription: create it first"}
	}
	if wantMiB > mib {
		if s.cfg.CanRaise != nil {
			if err := s.cfg.CanRaise(ctx, id, wantMiB); err != nil {
				return nil, &RemoteError{CodeRefused, err.Error()}
			}
		}
		mib = wantMiB
	}
	amount, err := Price(s.cfg.Price, max(mib, 1), days)
	if err != nil {
		return nil, &RemoteError{CodeMalformed, err.Error()}
	}
	q := &Quote{Rail: s.cfg.Rail.Kind(), ChainID: s.cfg.Rail.ChainID(), Sub: id, Address: s.cfg.Rail.Payee(), Amount: amount,
		MiB: mib, Days: days, Expires: s.cfg.Now().Add(s.cfg.QuoteTTL).Truncate(time.Second)}
	if err := q.Sign(s.cfg.QuoteKey); err != nil {
		return nil, err
	}
	return q, nil
}

// Submit verifies a payment and activates its subscription.
func (s *Service) Submit(ctx context.Context, tx TxID, quote []byte) (Result, error) {
	c, err := s.cfg.Verifier.Process(ctx, tx, quote)
	if err == nil {
		return Result{Active: true, Needed: s.cfg.Needed, Confirmations: s.cfg.Needed, PaidUntil: c.PaidUntil}, nil
	}
	switch {
	case errors.Is(err, ErrEndpoint) || errors.Is(err, ErrDisagree):
		return Result{}, &RemoteError{CodeUnavailable, "the provider cannot check the chain now; submit again later"}
	case errors.Is(err, ErrNotConfirmed), errors.Is(err, ErrPending), errors.Is(err, ErrNotFound):
		return Result{}, &RemoteError{CodePending, err.Error()}
	case errors.Is(err, ErrMalformedQuote):
		return Result{}, &RemoteError{CodeMalformed, err.Error()}
	case errors.Is(err, ErrBadSignature), errors.Is(err, ErrWrongChain), errors.Is(err, ErrWrongRail), errors.Is(err, ErrWrongRecipient),
		errors.Is(err, ErrUnderpaid), errors.Is(err, ErrNotThisQuote), errors.Is(err, ErrReverted), errors.Is(err, ErrPaidLate),
		errors.Is(err, ErrAlreadyCounted):
		return Result{}, &RemoteError{CodeRefused, err.Error()}
	}
	return Result{}, &RemoteError{CodeInternal, "the provider could not record the payment; submit again later"}
}

// Serve answers one request on st (the handler for Protocol).
func (s *Service) Serve(st p2p.Stream) {
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	st.SetDeadline(time.Now().Add(s.cfg.Timeout))
	typ, body, err := readFrame(st)
	if err != nil {
		writeFrame(st, msgError, encodeError(CodeMalformed, "unreadable request"))
		return
	}
	reply := func(v any, err error) {
		var re *RemoteError
		switch {
		case errors.As(err, &re):
			writeFrame(st, msgError, encodeError(re.Code, re.Msg))
		case err != nil:
			writeFrame(st, msgError, encodeError(CodeInternal, "internal error"))
		default:
			switch v := v.(type) {
			case Terms:
				writeFrame(st, msgTerms, encodeTerms(v))
			case *Quote:
				enc, _ := v.Encode()
				writeFrame(st, msgQuote, enc)
			case Result:
				writeFrame(st, msgResult, encodeResult(v))
			}
		}
	}
	switch typ {
	case msgTermsReq:
		reply(s.Terms(), nil)
	case msgQuoteReq:
		if len(body) != 20 && len(body) != 24 {
			reply(nil, &RemoteError{CodeMalformed, "quote request is sub (16) ‖ days (4) [‖ MiB (4)]"})
			return
		}
		var id SubID
		copy(id[:], body)
		var want uint32
		if len(body) == 24 {
			want = binary.LittleEndian.Uint32(body[20:])
		}
		reply(s.Quote(ctx, id, binary.LittleEndian.Uint32(body[16:20]), want))
	case msgSubmit:
		if len(body) < 32 {
			reply(nil, &RemoteError{CodeMalformed, "submit is tx (32) ‖ quote"})
			return
		}
		reply(s.Submit(ctx, TxID(body[:32]), body[32:]))
	default:
		reply(nil, &RemoteError{CodeMalformed, fmt.Sprintf("unknown request type 0x%02x", typ)})
	}
}

// StreamOpener opens service streams (*p2p.Node, *p2p.ClientHost).
type StreamOpener interface {
	OpenStream(ctx context.Context, p peer.ID, proto string) (p2p.Stream, error)
}

// Client asks one provider's payment service.
type Client struct {
	h     StreamOpener
	peer  peer.ID
	proto string
}

// NewClient returns a client of provider's payment service on network netID.
func NewClient(h StreamOpener, provider peer.ID, netID tangle.NetworkID) *Client {
	return &Client{h: h, peer: provider, proto: Protocol(netID)}
}

func (c *Client) ask(ctx context.Context, typ byte, body []byte) (any, error) {
	st, err := c.h.OpenStream(ctx, c.peer, c.proto)
	if err != nil {
		return nil, fmt.Errorf("payment: reaching the provider: %w", err)
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	if err := writeFrame(st, typ, body); err != nil {
		st.Reset()
		return nil, err
	}
	rt, rb, err := readFrame(st)
	if err != nil {
		return nil, fmt.Errorf("payment: reading the provider's answer: %w", err)
	}
	return decodeMessage(rt, rb)
}

// Terms asks the provider's price and payee.
func (c *Client) Terms(ctx context.Context) (Terms, error) {
	v, err := c.ask(ctx, msgTermsReq, nil)
	if err != nil {
		return Terms{}, err
	}
	t, ok := v.(Terms)
	if !ok {
		return Terms{}, fmt.Errorf("%w: unexpected answer", ErrMalformedFrame)
	}
	// The quote key is the provider's libp2p Ed25519 key (§14.1): quotes signed by any other key,
	// even one the provider announces, are not the provider's.
	if pk, err := c.peer.ExtractPublicKey(); err == nil {
		if raw, err := pk.Raw(); err == nil && !bytes.Equal(raw, t.QuoteKey) {
			return Terms{}, fmt.Errorf("payment: the provider announces a quote key that is not its own (%s's)", c.peer)
		}
	}
	return t, nil
}

// Quote asks a quote for days more of subscription id; it must be signed by terms' quote key and
// name id, terms' chain and payee.
func (c *Client) Quote(ctx context.Context, t Terms, id SubID, days uint32) (*Quote, error) {
	return c.QuoteMiB(ctx, t, id, 0, days)
}

// QuoteMiB is Quote for a quota of mib MiB if that is more than the subscription's (a top-up, whose
// activation raises the quota); 0 asks for the subscription's quota.
func (c *Client) QuoteMiB(ctx context.Context, t Terms, id SubID, mib, days uint32) (*Quote, error) {
	body := binary.LittleEndian.AppendUint32(append([]byte{}, id[:]...), days)
	if mib > 0 {
		body = binary.LittleEndian.AppendUint32(body, mib)
	}
	v, err := c.ask(ctx, msgQuoteReq, body)
	if err != nil {
		return nil, err
	}
	q, ok := v.(*Quote)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected answer", ErrMalformedFrame)
	}
	if !bytes.Equal(q.Signer, t.QuoteKey) || q.Sub != id || q.Days != days || q.ChainID != t.ChainID || q.Rail != t.Rail ||
		!bytes.Equal(q.Address, t.Address) || q.MiB < mib {
		return nil, errors.New("payment: the provider's quote does not match its terms or the request")
	}
	return q, nil
}

// Submit hands the provider a payment of q.
func (c *Client) Submit(ctx context.Context, tx TxID, q *Quote) (Result, error) {
	enc, err := q.Encode()
	if err != nil {
		return Result{}, err
	}
	v, err := c.ask(ctx, msgSubmit, append(tx[:], enc...))
	if err != nil {
		return Result{}, err
	}
	r, ok := v.(Result)
	if !ok {
		return Result{}, fmt.Errorf("%w: unexpected answer", ErrMalformedFrame)
	}
	return r, nil
}

// Progress is a step of Subscribe shown to the user.
type Progress struct {
	Stage string // "resuming" (a payment sent before), "paid", "confirming", "cancelled" (Tx: the replacement)
	Tx    TxID
	Err   error // the retryable state
}

// cancel stops a refused payment that is not in a block yet (a payment the provider will never count
// should not spend the money when it is mined later); progress hears "cancelled". Best effort: an
// error says what the user should know.
func cancel(ctx context.Context, rail Rail, tx TxID, progress func(Progress)) error {
	c, ok := rail.(Canceler)
	if !ok {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	ctx, done := context.WithTimeout(ctx, 30*time.Second)
	defer done()
	rep, err := c.Cancel(ctx, tx)
	switch {
	case errors.Is(err, ErrMined):
		return nil // on chain: the money went, and the refusal says why it does not count
	case err != nil:
		return fmt.Errorf("payment: the refused payment %s could not be cancelled (it may still be mined): %w", tx, err)
	}
	if progress != nil {
		progress(Progress{Stage: "cancelled", Tx: rep})
	}
	return nil
}

// PayAndActivate pays q with rail (idempotent per quote) and submits the payment to the provider
// until it is active, polling every interval; progress hears each step. Refusals end it.
func PayAndActivate(ctx context.Context, c *Client, rail Rail, q *Quote, every time.Duration, progress func(Progress)) (TxID, Result, error) {
	tx, err := rail.Pay(ctx, q)
	if err != nil {
		return tx, Result{}, err
	}
	if progress != nil {
		progress(Progress{Stage: "paid", Tx: tx})
	}
	// Once the provider has activated the payment or refused it for good, it is settled: a later run
	// for the same subscription pays a new quote instead of resuming this one.
	settle := func() error {
		if rs, ok := rail.(Resumable); ok {
			return rs.Settle(context.WithoutCancel(ctx), tx)
		}
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r, err := c.Submit(ctx, tx, q)
		if err == nil {
			return tx, r, settle()
		}
		var re *RemoteError
		if !errors.As(err, &re) || !re.Retryable() {
			if errors.As(err, &re) {
				if re.Final() {
					return tx, Result{}, errors.Join(err, cancel(ctx, rail, tx, progress), settle())
				}
				return tx, Result{}, err
			}
			// The provider is unreachable: keep trying; the payment is on its way regardless.
		}
		if progress != nil {
			progress(Progress{Stage: "confirming", Tx: tx, Err: err})
		}
		select {
		case <-ctx.Done():
			return tx, Result{}, fmt.Errorf("%w (payment %s sent; run the command again to resume: it will not pay twice)", ctx.Err(), tx)
		case <-t.C:
		}
	}
}
