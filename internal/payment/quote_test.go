package payment

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/protocoldoc"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite protocol.md §14.4 from the code")

const quoteHeading = "### 14.4 Quote vectors"

func vectorKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, 32))
}

func vectorQuotes() []*Quote {
	addr, _ := hex.DecodeString("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
	return []*Quote{
		{Rail: RailEVM, ChainID: IOTAEVMChainID, Sub: SubID{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10},
			Address: addr, Amount: 1_500_000_000, MiB: 64, Days: 30, Expires: time.Unix(1_800_000_000, 0).UTC()},
		{Rail: RailEVM, ChainID: 1337, Sub: SubID{0xff}, Address: addr, Amount: 1, MiB: 0, Days: 1,
			Expires: time.Unix(1_700_000_000, 0).UTC()},
	}
}

func quoteVectorBody(t *testing.T) string {
	var b strings.Builder
	b.WriteString("Checked by `TestProtocolVectorsPayment` in `internal/payment`. The quote key is the Ed25519 key of\n" +
		"seed 0x42 × 32. A `valid` vector gives a quote's fields, its encoding and its payment calldata;\n" +
		"an `invalid` one an encoding a reader MUST refuse.\n")
	for _, q := range vectorQuotes() {
		if err := q.Sign(vectorKey()); err != nil {
			t.Fatal(err)
		}
		enc, err := q.Encode()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "\n```\nvector = valid\nrail = %d\nchain_id = %d\nsub = %x\naddress = %x\namount = %d\nmib = %d\ndays = %d\nexpires = %d\nsigner = %x\nquote = %x\ncalldata = %x\n```\n",
			q.Rail, q.ChainID, q.Sub, q.Address, q.Amount, q.MiB, q.Days, q.Expires.Unix(), q.Signer, enc, q.Calldata())
	}
	good, _ := vectorQuotes()[0], 0
	good.Sign(vectorKey())
	enc, _ := good.Encode()
	bad := func(reason string, e []byte) {
		fmt.Fprintf(&b, "\n```\nvector = invalid\nreason = %s\nquote = %x\n```\n", reason, e)
	}
	bad("truncated", enc[:len(enc)-1])
	bad("trailing byte", append(bytes.Clone(enc), 0))
	flip := bytes.Clone(enc)
	flip[30] ^= 1 // inside the address
	bad("signature does not cover the bytes", flip)
	v2 := bytes.Clone(enc)
	v2[0] = 2
	bad("version 2", v2)
	short := bytes.Clone(enc)
	short[26] = 19 // EVM address length 19
	bad("EVM address of 19 bytes", short)
	zero := *good
	zero.Amount = 0
	ze := append(zero.appendBody(nil), good.Sig...)
	bad("zero amount", ze)
	return b.String()
}

// TestProtocolVectorsPayment checks protocol.md §14.4 against the code (go test -run
// TestProtocolVectorsPayment -update-vectors rewrites it).
func TestProtocolVectorsPayment(t *testing.T) {
	if *updateVectors {
		if err := protocoldoc.ReplaceSection(protocoldoc.Path, quoteHeading, quoteVectorBody(t), "### 14.3 Verification"); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := protocoldoc.Read(protocoldoc.Path, quoteHeading)
	if err != nil {
		t.Fatal(err)
	}
	valid := 0
	for i, v := range vs {
		raw, err := hex.DecodeString(v.Vals["quote"])
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		q, err := DecodeQuote(raw)
		if v.Vals["vector"] == "invalid" {
			if err == nil {
				t.Errorf("vector %d (%s): accepted", i, v.Vals["reason"])
			}
			continue
		}
		if err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		valid++
		want := vectorQuotes()[valid-1]
		if err := want.Sign(vectorKey()); err != nil {
			t.Fatal(err)
		}
		enc, _ := want.Encode()
		if !bytes.Equal(enc, raw) {
			t.Errorf("vector %d: the code encodes %x", i, enc)
		}
		u := func(k string) uint64 { n, _ := strconv.ParseUint(v.Vals[k], 10, 64); return n }
		if uint64(q.Rail) != u("rail") || q.ChainID != u("chain_id") || fmt.Sprintf("%x", q.Sub) != v.Vals["sub"] ||
			fmt.Sprintf("%x", q.Address) != v.Vals["address"] || uint64(q.Amount) != u("amount") || uint64(q.MiB) != u("mib") ||
			uint64(q.Days) != u("days") || uint64(q.Expires.Unix()) != u("expires") || fmt.Sprintf("%x", q.Signer) != v.Vals["signer"] {
			t.Errorf("vector %d decodes to %+v", i, q)
		}
		if got := fmt.Sprintf("%x", q.Calldata()); got != v.Vals["calldata"] {
			t.Errorf("vector %d: calldata %s", i, got)
		}
	}
	if valid != len(vectorQuotes()) {
		t.Fatalf("%d valid vectors, want %d", valid, len(vectorQuotes()))
	}
}

func TestQuoteCheck(t *testing.T) {
	q := vectorQuotes()[0]
	if err := q.Sign(vectorKey()); err != nil {
		t.Fatal(err)
	}
	pub := vectorKey().Public().(ed25519.PublicKey)
	if err := q.Check(pub, q.Expires.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := q.Check(pub, q.Expires); !errors.Is(err, ErrQuoteExpired) {
		t.Fatalf("at expiry: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if err := q.Check(other, q.Expires.Add(-time.Second)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other provider: %v", err)
	}
}

func TestAmounts(t *testing.T) {
	for _, c := range []struct {
		wei  string
		want Nanos
	}{{"0", 0}, {"1", 1}, {"1000000000", 1}, {"1000000001", 2}, {"1500000000000000000", 1_500_000_000}} {
		w, _ := new(big.Int).SetString(c.wei, 10)
		if got, err := RoundUpWei(w); err != nil || got != c.want {
			t.Errorf("RoundUpWei(%s) = %d %v, want %d", c.wei, got, err, c.want)
		}
	}
	if s := Nanos(1_500_000_000).String(); s != "1.5 IOTA" {
		t.Errorf("%q", s)
	}
	if s := Nanos(1).String(); s != "0.000000001 IOTA" {
		t.Errorf("%q", s)
	}
	if p, err := Price(1000, 64, 30); err != nil || p != 1_920_000 {
		t.Errorf("Price = %d %v", p, err)
	}
	if _, err := Price(1<<40, 1<<20, 1<<20); err == nil {
		t.Error("overflow not caught")
	}
}

// FuzzDecodeQuote: a hostile quote never panics, and what decodes re-encodes to the same bytes.
func FuzzDecodeQuote(f *testing.F) {
	for _, q := range vectorQuotes() {
		q.Sign(vectorKey())
		enc, _ := q.Encode()
		f.Add(enc)
		f.Add(enc[:len(enc)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := DecodeQuote(b)
		if err != nil {
			return
		}
		enc, err := q.Encode()
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("decoded %x re-encodes to %x (%v)", b, enc, err)
		}
	})
}

// BenchmarkPaymentVerify verifies one confirmed payment on the simulated backend over and over (every
// check of protocol.md §14.3 but the counting, which is one SQLite row).
func BenchmarkPaymentVerify(b *testing.B) {
	w := &world{payerKey: mustKey(b), chainID: simChainID}
	w.payee[0] = 1
	_, w.quoteKey, _ = ed25519.GenerateKey(nil)
	w.sim = newSim(b, addrOf(w.payerKey))
	led := openLedger(b, "payer.db")
	ep := Endpoint{Name: "simulated", Client: w.sim.Client()}
	payer, _ := NewEVM(EVMConfig{ChainID: simChainID, Key: w.payerKey, Ledger: led}, ep)
	prov, _ := NewEVM(EVMConfig{ChainID: simChainID, PayeeAddress: &w.payee}, ep)
	q := &Quote{Rail: RailEVM, ChainID: simChainID, Sub: SubID{1}, Address: w.payee.Bytes(), Amount: 1_000_000_000, Days: 1, Expires: time.Now().Add(time.Hour)}
	q.Sign(w.quoteKey)
	ctx := context.Background()
	tx, err := payer.Pay(ctx, q)
	if err != nil {
		b.Fatal(err)
	}
	w.sim.Commit()
	w.sim.Commit()
	b.ResetTimer()
	for b.Loop() {
		if _, err := prov.Verify(ctx, tx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// FuzzDecodeMessage: a hostile provider's answer (any frame) never panics and never allocates past
// the frame bound.
func FuzzDecodeMessage(f *testing.F) {
	q := vectorQuotes()[0]
	q.Sign(vectorKey())
	enc, _ := q.Encode()
	t := Terms{Rail: RailEVM, ChainID: 8822, PricePerMiB: 1000, Address: q.Address, Confirmations: 2, QuoteKey: q.Signer}
	for _, fr := range [][]byte{
		frame(msgTerms, encodeTerms(t)), frame(msgQuote, enc), frame(msgResult, encodeResult(Result{Active: true, Needed: 2, PaidUntil: time.Unix(1800000000, 0)})),
		frame(msgError, encodeError(CodePending, "1 of 2")), {0xff, 0xff, 0xff, 0xff}, {},
	} {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, body, err := readFrame(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(body) > maxFrameBody {
			t.Fatalf("body of %d bytes", len(body))
		}
		decodeMessage(typ, body)
	})
}

func frame(typ byte, body []byte) []byte {
	var b bytes.Buffer
	writeFrame(&b, typ, body)
	return b.Bytes()
}

func TestParseIOTA(t *testing.T) {
	for s, want := range map[string]Nanos{"1": 1e9, "1.5": 1_500_000_000, "0.000001": 1000, ".000000001": 1, "2 IOTA": 2e9} {
		if got, err := ParseIOTA(s); err != nil || got != want {
			t.Errorf("ParseIOTA(%q) = %d %v, want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "x", "1.0000000001", "-1", "99999999999999999999"} {
		if _, err := ParseIOTA(s); err == nil && s != "" {
			t.Errorf("ParseIOTA(%q) accepted", s)
		}
	}
}
