package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/p2p/p2ptest"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/storage"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// lightProvider is a real storage provider (internal/storage) served on a loopback host.
type lightProvider struct {
	p    *storage.Provider
	host *p2p.ClientHost
}

func startLightProvider(tb testing.TB, params tangle.Params) *lightProvider {
	tb.Helper()
	p, err := storage.Open(storage.Config{Dir: tb.TempDir(), Params: params})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	h := p2ptest.LoopbackHost(tb) // closed before the provider
	h.HandleStream(p.Protocol(), p.Serve)
	return &lightProvider{p: p, host: h}
}

func (lp *lightProvider) addr() string { return lp.host.Addrs()[0] }

// sealedBlocks builds n blocks whose route tags match to's prefix: every tenth is a mail sealed to
// to, the others are sealed to strangers who share the prefix (what a storage node really holds for a
// subscriber with 8 tag bits: its prefix's share of everyone's traffic).
func sealedBlocks(tb testing.TB, params tangle.Params, from *identity.Identity, to identity.Address, n int) []*tangle.Block {
	tb.Helper()
	strangers := make([]identity.Address, 4)
	for i := range strangers {
		id, err := identity.Generate(0)
		if err != nil {
			tb.Fatal(err)
		}
		strangers[i] = id.Address()
	}
	ctx := context.Background()
	out := make([]*tangle.Block, 0, n)
	now := time.Now()
	for i := range n {
		rcpt := strangers[i%len(strangers)]
		if i%10 == 0 {
			rcpt = to
		}
		raw := fmt.Appendf(nil, "From: %s\r\nTo: %s\r\nSubject: stored %d\r\nMessage-ID: <s%d@tangle>\r\n\r\n%0500d\r\n",
			from.Address().Mail(), rcpt.Mail(), i, i, i)
		payload, err := seal.Seal(from, rcpt, params.ID, seal.KindMail, now, mail.EncodeInline(raw))
		if err != nil {
			tb.Fatal(err)
		}
		b, err := params.Build(ctx, tangle.Header{Time: now.UnixMilli(), TTL: params.DefaultMailTTL,
			Parents: []tangle.ID{tangle.Genesis}, Tag: to.MakeTag(nil), PayloadType: tangle.PayloadSealed, Payload: payload})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// BenchmarkLightSync: a light client that was off comes back and fetches 10,000 blocks its storage
// provider (internal/storage, on loopback) kept for its 8-bit prefix: fetched in pages, validated,
// trial-opened (one in ten is its mail, the rest are strangers' sharing the prefix), its mail filed
// durably in the INBOX, the cursor persisted and the provider released. Timed from StartLight until
// the client has synced (node start included). Reports blocks/s (goal ≥ 5,000).
//
//	go test -run '^$' -bench LightSync -benchtime 3x ./internal/node/
func BenchmarkLightSync(b *testing.B) {
	const blocks = 10_000
	params := tangle.BenchNet
	lp := startLightProvider(b, params)
	ctx := context.Background()
	alice, err := identity.Generate(8)
	if err != nil {
		b.Fatal(err)
	}
	var elapsed time.Duration
	b.StopTimer()
	for i := range b.N {
		dir := b.TempDir()
		cfg := DevnetConfig(dir)
		cfg.Network = params
		cfg.StorageProviders = []string{lp.addr()}
		grant, err := lp.p.Grant(ctx, 64, 30)
		if err != nil {
			b.Fatal(err)
		}
		cfg.StorageGrants = []string{grant}
		// First start: the subscription is created (and activated by the grant).
		bob, err := StartLight(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		<-bob.LightClients()[0].Synced()
		bob.Close()
		bs := sealedBlocks(b, params, alice, bob.Identity().Address(), blocks)
		if err := lp.p.Offer(ctx, bs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		bob, err = StartLight(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		<-bob.LightClients()[0].Synced()
		elapsed += time.Since(start)
		b.StopTimer()
		st := bob.LightClients()[0].Stats()
		if st.Fetched != blocks || st.Filed != blocks {
			b.Fatalf("round %d: fetched %d, filed %d; want %d", i, st.Fetched, st.Filed, blocks)
		}
		mb, err := bob.Mailboxes().MailboxByRole(ctx, store.RoleInbox)
		if err != nil {
			b.Fatal(err)
		}
		if mb.Messages != blocks/10 {
			b.Fatalf("round %d: INBOX has %d messages, want %d", i, mb.Messages, blocks/10)
		}
		bob.Close()
	}
	b.ReportMetric(float64(blocks*b.N)/elapsed.Seconds(), "blocks/s")
}
