package storage

import (
	"errors"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/storage/wire"
)

// TestChargeBlob: a subscriber's blob uploads count against its quota until they expire: a second
// charge of the same blob is free (a resumed upload), a blob past the quota is refused with ErrQuota,
// a peer that is no subscriber with ErrNotFound; the usage survives a restart and Prune returns it at
// the blob's expiry.
func TestChargeBlob(t *testing.T) {
	clk := newFakeClock(time.Now())
	dir := t.TempDir()
	srv := startServer(t, Config{Dir: dir, Now: clk.Now})
	c := dial(t, srv)
	id, _ := subscribe(t, srv, c, wire.Prefix{Bits: 4}, 1) // 1 MiB
	ctx := tctx(t)
	used := func(p *Provider) uint64 {
		t.Helper()
		st, err := p.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		return st.UsedBytes
	}
	const kib = 1 << 10
	soon, later := clk.Now().Add(time.Hour), clk.Now().Add(48*time.Hour)
	if err := srv.p.ChargeBlob(ctx, c.h.ID(), [32]byte{1}, 600*kib, soon); err != nil {
		t.Fatal(err)
	}
	if err := srv.p.ChargeBlob(ctx, c.h.ID(), [32]byte{1}, 600*kib, soon); err != nil {
		t.Fatalf("charging the same blob again: %v", err)
	}
	if u := used(srv.p); u != 600*kib {
		t.Fatalf("used %d bytes, want one charge of %d", u, 600*kib)
	}
	if err := srv.p.ChargeBlob(ctx, c.h.ID(), [32]byte{2}, 500*kib, later); !errors.Is(err, ErrQuota) {
		t.Fatalf("a blob past the quota: %v, want ErrQuota", err)
	}
	if err := srv.p.ChargeBlob(ctx, c.h.ID(), [32]byte{2}, 300*kib, later); err != nil {
		t.Fatal(err)
	}
	if err := srv.p.ChargeBlob(ctx, srv.host.ID(), [32]byte{3}, 1, later); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a peer that is no subscriber: %v, want ErrNotFound", err)
	}

	// Restart: the charges are in storage.db.
	srv.stop()
	p, err := Open(Config{Dir: dir, Now: clk.Now, Params: testParams()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if u := used(p); u != 900*kib {
		t.Fatalf("after a restart: used %d, want %d", u, 900*kib)
	}
	clk.Add(2 * time.Hour)
	if _, err := p.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if u := used(p); u != 300*kib {
		t.Fatalf("after the first blob expired: used %d, want %d", u, 300*kib)
	}
	clk.Add(48 * time.Hour)
	if _, err := p.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if u := used(p); u != 0 {
		t.Fatalf("after both expired: used %d", u)
	}
}
