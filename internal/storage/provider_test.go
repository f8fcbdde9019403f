package storage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

var bobPrefix = wire.Prefix{Bits: 12, Tag: [8]byte{0xb0, 0xb0}}

func TestStoreFetchRelease(t *testing.T) {
	dir := t.TempDir()
	params := testParams()
	srv := startServer(t, Config{Dir: dir, Params: params})
	c := dial(t, srv)
	id, priv := subscribe(t, srv, c, bobPrefix, 16)
	ctx := tctx(t)
	now := time.Now()
	var mine []*tangle.Block
	var all []*tangle.Block
	for i := range 60 {
		var b *tangle.Block
		if i%3 == 0 {
			b = mkBlock(t, params, tagNot(bobPrefix), 600, now)
		} else {
			b = mkBlock(t, params, tagWith(bobPrefix), 400+i*20, now)
			mine = append(mine, b)
		}
		all = append(all, b)
	}
	for i := 0; i < len(all); i += 7 { // batches, as the node offers them
		if err := srv.p.Offer(ctx, all[i:min(i+7, len(all))]); err != nil {
			t.Fatal(err)
		}
	}
	// A block offered again is not stored twice.
	if err := srv.p.Offer(ctx, mine[:3]); err != nil {
		t.Fatal(err)
	}
	got, last := fetchAll(t, c.s, 0, 7, 3000)
	if len(got) != len(mine) {
		t.Fatalf("fetched %d blocks, want %d", len(got), len(mine))
	}
	for i, g := range got {
		if !bytes.Equal(g.Block, mine[i].Raw) {
			t.Fatalf("block %d differs from the one gossiped", i)
		}
	}
	st, err := c.s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, b := range mine {
		total += uint64(len(b.Raw))
	}
	if st.ID != id || st.State != wire.Active || st.Blocks != uint64(len(mine)) || st.UsedBytes != total || st.QuotaBytes != 16<<20 || st.Prefix != bobPrefix {
		t.Fatalf("status %+v", st)
	}
	// Page bounds: count, and bytes (at least one block).
	page, next, more, err := c.s.Fetch(ctx, 0, 3, 1<<20)
	if err != nil || len(page) != 3 || !more || next != page[2].Cursor {
		t.Fatalf("count page: %d blocks, more %v, next %d, %v", len(page), more, next, err)
	}
	page, _, more, err = c.s.Fetch(ctx, 0, 100, 1)
	if err != nil || len(page) != 1 || !more {
		t.Fatalf("byte page: %d blocks, more %v, %v", len(page), more, err)
	}

	// Release the first half; restart the provider; the cursors and the rest survive.
	mid := got[len(got)/2-1].Cursor
	if err := c.s.Release(ctx, mid); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	if _, _, _, err := c.s.Fetch(ctx, 0, 1, 1); err == nil {
		t.Fatal("fetch from a stopped provider succeeded")
	}
	if _, _, _, err := c.s.Fetch(ctx, 0, 1, 1); !errors.Is(err, wire.ErrSessionClosed) {
		t.Fatalf("fetch on a broken session: %v", err)
	}
	srv2 := startServer(t, Config{Dir: dir, Params: params})
	c2 := dial(t, srv2)
	if err := c2.s.Auth(ctx, id, priv); err != nil {
		t.Fatal(err)
	}
	rest, last2 := fetchAll(t, c2.s, 0, 512, 4<<20)
	if last2 != last || len(rest) != len(got)-len(got)/2 {
		t.Fatalf("after restart: %d blocks up to %d, want %d up to %d", len(rest), last2, len(got)-len(got)/2, last)
	}
	for i, r := range rest {
		if want := got[len(got)/2+i]; r.Cursor != want.Cursor || !bytes.Equal(r.Block, want.Block) {
			t.Fatalf("after restart block %d: cursor %d, want %d", i, r.Cursor, want.Cursor)
		}
	}
	// A released block offered again (the node re-offers its block store at every start) is not
	// stored again, also after the restart; a new one is.
	if err := srv2.p.Offer(ctx, mine[:2]); err != nil {
		t.Fatal(err)
	}
	// New blocks continue after the old cursors (a cursor is never reused).
	nb := mkBlock(t, params, tagWith(bobPrefix), 500, now)
	if err := srv2.p.Offer(ctx, []*tangle.Block{nb}); err != nil {
		t.Fatal(err)
	}
	more2, _ := fetchAll(t, c2.s, last, 10, 1<<20)
	if len(more2) != 1 || more2[0].Cursor <= last {
		t.Fatalf("new block: %+v after %d", more2, last)
	}
	if st, _ := c2.s.Status(ctx); st.Blocks != uint64(len(rest)+1) {
		t.Fatalf("status after release: %+v", st)
	}
}

func TestWatch(t *testing.T) {
	params := testParams()
	srv := startServer(t, Config{Params: params})
	c := dial(t, srv)
	subscribe(t, srv, c, bobPrefix, 4)
	ctx := tctx(t)
	ch, err := c.s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := mkBlock(t, params, tagWith(bobPrefix), 500, time.Now())
	if err := srv.p.Offer(ctx, []*tangle.Block{mkBlock(t, params, tagNot(bobPrefix), 500, time.Now()), b}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-ch:
		if !bytes.Equal(p.Block, b.Raw) || p.Cursor != 1 {
			t.Fatalf("pushed cursor %d", p.Cursor)
		}
	case <-ctx.Done():
		t.Fatal("no push")
	}
}

func TestUnauthorized(t *testing.T) {
	params := testParams()
	clock := newFakeClock(time.Now())
	now := clock.Now()
	srv := startServer(t, Config{Params: params, Now: clock.Now})
	ctx := tctx(t)
	owner := dial(t, srv)
	id, priv := subscribe(t, srv, owner, bobPrefix, 4)
	other := wire.Prefix{Bits: 12, Tag: [8]byte{0x12, 0x30}}
	if err := srv.p.Offer(ctx, []*tangle.Block{mkBlock(t, params, tagWith(bobPrefix), 500, now), mkBlock(t, params, tagWith(other), 500, now)}); err != nil {
		t.Fatal(err)
	}

	// No key at all: nothing is served.
	c := dial(t, srv)
	_, _, _, err := c.s.Fetch(ctx, 0, 10, 1<<20)
	wantCode(t, err, wire.CodeUnauthorized)
	_, err = c.s.Status(ctx)
	wantCode(t, err, wire.CodeUnauthorized)
	wantCode(t, c.s.Release(ctx, 100), wire.CodeUnauthorized)
	if _, err := c.s.Watch(ctx); !wire.IsCode(err, wire.CodeUnauthorized) {
		t.Fatalf("watch without auth: %v", err)
	}

	// The wrong key: unauthorized, and the session stays unauthenticated.
	_, wrong := newKey(t)
	wantCode(t, c.s.Auth(ctx, id, wrong), wire.CodeUnauthorized)
	_, _, _, err = c.s.Fetch(ctx, 0, 10, 1<<20)
	wantCode(t, err, wire.CodeUnauthorized)

	// A wrong challenge: a signature over another nonce (a replayed signature) is refused, and so is an
	// auth frame without a challenge.
	st := rawStream(t, c, srv)
	nonce1 := challenge(t, st, id)
	sig1 := ed25519.Sign(priv, wire.AuthMessage(srv.host.ID(), id, nonce1))
	_ = challenge(t, st, id) // a fresh nonce: sig1 is now a replay
	if m := send(t, st, authMsg(sig1)); !isErr(m, wire.CodeUnauthorized) {
		t.Fatalf("replayed signature: %#v", m)
	}
	if m := send(t, st, authMsg(sig1)); !isErr(m, wire.CodeUnauthorized) {
		t.Fatalf("auth without a challenge: %#v", m)
	}
	// A signature bound to another provider is refused.
	st2 := rawStream(t, c, srv)
	n := challenge(t, st2, id)
	if m := send(t, st2, authMsg(ed25519.Sign(priv, wire.AuthMessage(c.h.ID(), id, n)))); !isErr(m, wire.CodeUnauthorized) {
		t.Fatalf("signature for another provider: %#v", m)
	}

	// Another subscriber's id with one's own key: unauthorized.
	mallory := dial(t, srv)
	mid, mpriv := subscribe(t, srv, mallory, other, 4)
	wantCode(t, mallory.s.Auth(ctx, id, mpriv), wire.CodeUnauthorized)
	// A prefix it did not subscribe: its own subscription serves only its own prefix.
	if err := mallory.s.Auth(ctx, mid, mpriv); err != nil {
		t.Fatal(err)
	}
	got, _ := fetchAll(t, mallory.s, 0, 100, 1<<20)
	for _, g := range got {
		b, _ := tangle.Decode(g.Block)
		if bobPrefix.Matches(b.Tag) {
			t.Fatal("a block of bob's prefix was served to another subscription")
		}
	}

	// A pending subscription: authenticated, but nothing served.
	pub, ppriv := newKey(t)
	pid, state, err := c.s.Create(ctx, wire.CreateRequest{Prefix: bobPrefix, Key: pub})
	if err != nil || state != wire.Pending {
		t.Fatalf("create without grant: %v %v", state, err)
	}
	if err := c.s.Auth(ctx, pid, ppriv); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = c.s.Fetch(ctx, 0, 10, 1<<20)
	wantCode(t, err, wire.CodePending)

	// An expired subscription: a clear error and nothing.
	clock.Add(31 * 24 * time.Hour)
	now = clock.Now()
	_, _, _, err = owner.s.Fetch(ctx, 0, 10, 1<<20)
	wantCode(t, err, wire.CodeExpired)
	if st, err := owner.s.Status(ctx); err != nil || st.Expires.After(now) {
		t.Fatalf("expired status %+v %v", st, err)
	}
	_, err = owner.s.Watch(ctx)
	wantCode(t, err, wire.CodeExpired)
	wantCode(t, owner.s.Release(ctx, 1), wire.CodeExpired)
}

func TestAdmission(t *testing.T) {
	params := testParams()
	allowPub, allowPriv := newKey(t)
	srv := startServer(t, Config{Params: params, Allow: []ed25519.PublicKey{allowPub}, MaxPerAddr: 5, MaxSubs: 6,
		CapBytes: 100 << 20})
	c := dial(t, srv)
	ctx := tctx(t)
	create := func(req wire.CreateRequest) (wire.SubID, wire.SubState, error) { return c.s.Create(ctx, req) }

	// No grant, no allowlist: pending (a payment or the operator activates it).
	k1, _ := newKey(t)
	id1, st, err := create(wire.CreateRequest{Prefix: bobPrefix, Key: k1})
	if err != nil || st != wire.Pending {
		t.Fatalf("pending: %v %v", st, err)
	}
	// A one-time grant activates once; its quota caps the request.
	tok, err := srv.p.Grant(ctx, 8, 10)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := newKey(t)
	id2, st, err := create(wire.CreateRequest{Prefix: bobPrefix, Key: k2, QuotaMiB: 50, Grant: tok})
	if err != nil || st != wire.Active {
		t.Fatalf("granted: %v %v", st, err)
	}
	if s, _ := srv.p.lookup(id2); s.quota != 8<<20 {
		t.Fatalf("granted quota %d", s.quota)
	}
	k3, _ := newKey(t)
	_, _, err = create(wire.CreateRequest{Prefix: bobPrefix, Key: k3, Grant: tok})
	wantCode(t, err, wire.CodeRefused)
	_, _, err = create(wire.CreateRequest{Prefix: bobPrefix, Key: k3, Grant: "tmg_forged"})
	wantCode(t, err, wire.CodeRefused)
	// The allowlist activates its keys.
	ida, st, err := create(wire.CreateRequest{Prefix: bobPrefix, Key: allowPub, QuotaMiB: 10})
	if err != nil || st != wire.Active {
		t.Fatalf("allowlisted: %v %v", st, err)
	}
	if err := c.s.Auth(ctx, ida, allowPriv); err != nil {
		t.Fatal(err)
	}
	// Per key: one subscription per key.
	_, _, err = create(wire.CreateRequest{Prefix: bobPrefix, Key: k1})
	wantCode(t, err, wire.CodeRefused)
	// The disk cap: active quotas never exceed it.
	tok2, _ := srv.p.Grant(ctx, 1000, 10)
	k4, _ := newKey(t)
	_, _, err = create(wire.CreateRequest{Prefix: bobPrefix, Key: k4, QuotaMiB: 1000, Grant: tok2})
	wantCode(t, err, wire.CodeQuotaFull)
	// Activate (the payment seam) turns a pending subscription active.
	if err := srv.p.Activate(ctx, id1, time.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if s, err := srv.p.Lookup(id1); err != nil || s.State != wire.Active || s.QuotaBytes != 64<<20 || s.Expires.IsZero() {
		t.Fatalf("activated: %+v %v", s, err)
	}
	if _, err := srv.p.Lookup(wire.SubID{9}); err != ErrNotFound {
		t.Fatalf("lookup unknown: %v", err)
	}
	if err := srv.p.Activate(ctx, wire.SubID{1}, time.Now()); err != ErrNotFound {
		t.Fatalf("activate unknown: %v", err)
	}
	// Per address: 5 a day from one IP (3 created so far).
	for range 2 {
		k, _ := newKey(t)
		if _, _, err := create(wire.CreateRequest{Prefix: bobPrefix, Key: k}); err != nil {
			t.Fatal(err)
		}
	}
	k5, _ := newKey(t)
	_, _, err = create(wire.CreateRequest{Prefix: bobPrefix, Key: k5})
	wantCode(t, err, wire.CodeRefused)
	// In total: at most MaxSubs.
	srv.p.cfg.MaxPerAddr = 100
	k6, _ := newKey(t)
	if _, _, err := create(wire.CreateRequest{Prefix: bobPrefix, Key: k6}); err != nil {
		t.Fatal(err)
	}
	k7, _ := newKey(t)
	_, _, err = create(wire.CreateRequest{Prefix: bobPrefix, Key: k7})
	wantCode(t, err, wire.CodeRefused)
	if s := srv.p.Stats(); s.Active != 3 || s.Pending != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRetention(t *testing.T) {
	params := benchParams()
	clock := newFakeClock(time.Now())
	now := clock.Now()
	srv := startServer(t, Config{Params: params, Now: clock.Now, ExpiredGrace: 2 * 24 * time.Hour})
	c := dial(t, srv)
	ctx := tctx(t)
	tok, _ := srv.p.Grant(ctx, 4, 40)
	pub, priv := newKey(t)
	id, _, err := c.s.Create(ctx, wire.CreateRequest{Prefix: bobPrefix, RetentionDays: 3, Key: pub, Grant: tok})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.s.Auth(ctx, id, priv); err != nil {
		t.Fatal(err)
	}
	old := mkBlock(t, params, tagWith(bobPrefix), 500, now)
	if err := srv.p.Offer(ctx, []*tangle.Block{old}); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * 24 * time.Hour)
	now = clock.Now()
	young := mkBlock(t, params, tagWith(bobPrefix), 500, now)
	if err := srv.p.Offer(ctx, []*tangle.Block{young}); err != nil {
		t.Fatal(err)
	}
	// A pending subscription is dropped after PendingTTL.
	kp, _ := newKey(t)
	pid, _, err := c.s.Create(ctx, wire.CreateRequest{Prefix: bobPrefix, Key: kp})
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(36 * time.Hour)
	now = clock.Now() // old is 3.5 days old, young 1.5
	n, err := srv.p.Prune(ctx)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	got, _ := fetchAll(t, c.s, 0, 10, 1<<20)
	if len(got) != 1 || !bytes.Equal(got[0].Block, young.Raw) {
		t.Fatalf("after retention: %d blocks", len(got))
	}
	if _, ok := srv.p.lookup(pid); ok {
		t.Fatal("stale pending subscription kept")
	}
	if st := srv.p.Stats(); st.StoredBytes != uint64(len(young.Raw)) {
		t.Fatalf("stored bytes %d", st.StoredBytes)
	}
	// Expiry: expired at 40 days, deleted ExpiredGrace later.
	clock.Add(37 * 24 * time.Hour)
	now = clock.Now() // 40.5 days after the grant
	if _, err := srv.p.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if s, ok := srv.p.lookup(id); !ok || s.state != wire.Expired {
		t.Fatalf("after expiry: %+v %v", s.state, ok)
	}
	clock.Add(3 * 24 * time.Hour)
	now = clock.Now()
	if _, err := srv.p.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.p.lookup(id); ok {
		t.Fatal("expired subscription kept past its grace")
	}
	if st := srv.p.Stats(); st.StoredBytes != 0 {
		t.Fatalf("stored bytes %d", st.StoredBytes)
	}
}

// TestStrangerGrinding: a stranger grinds blocks with bob's prefix until bob's quota is full. The
// quota refuses the new blocks; bob's stored mail stays, and bob sees the quota full in Status.
func TestStrangerGrinding(t *testing.T) {
	params := benchParams()
	srv := startServer(t, Config{Params: params})
	c := dial(t, srv)
	subscribe(t, srv, c, bobPrefix, 1)
	ctx := tctx(t)
	now := time.Now()
	var mail []*tangle.Block
	for range 20 {
		mail = append(mail, mkBlock(t, params, tagWith(bobPrefix), 4000, now))
	}
	if err := srv.p.Offer(ctx, mail); err != nil {
		t.Fatal(err)
	}
	// The stranger: 600 blocks of 8 KiB (4.7 MiB) with bob's prefix, in batches.
	for i := 0; i < 600; i += 50 {
		var spam []*tangle.Block
		for range 50 {
			spam = append(spam, mkBlock(t, params, tagWith(bobPrefix), 8192, now))
		}
		if err := srv.p.Offer(ctx, spam); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.UsedBytes > st.QuotaBytes || st.UsedBytes+8192 < st.QuotaBytes {
		t.Fatalf("quota not full: %d of %d", st.UsedBytes, st.QuotaBytes)
	}
	if srv.p.ctr.refusedQuota.Load() == 0 {
		t.Fatal("nothing refused")
	}
	got, _ := fetchAll(t, c.s, 0, 512, 4<<20)
	if len(got) < len(mail) {
		t.Fatalf("%d blocks stored, fewer than bob's mail", len(got))
	}
	for i, b := range mail {
		if !bytes.Equal(got[i].Block, b.Raw) {
			t.Fatalf("bob's mail %d was pushed out", i)
		}
	}
	// After bob releases, new mail is stored again.
	if err := c.s.Release(ctx, got[len(got)-1].Cursor); err != nil {
		t.Fatal(err)
	}
	late := mkBlock(t, params, tagWith(bobPrefix), 4000, now)
	if err := srv.p.Offer(ctx, []*tangle.Block{late}); err != nil {
		t.Fatal(err)
	}
	got2, _ := fetchAll(t, c.s, got[len(got)-1].Cursor, 10, 1<<20)
	if len(got2) != 1 || !bytes.Equal(got2[0].Block, late.Raw) {
		t.Fatalf("after release: %d blocks", len(got2))
	}
}

var _ = context.Background

// TestMalformed: garbage on the stream gets a malformed error frame and the stream closes; nothing
// panics, and the provider serves the next client.
func TestMalformed(t *testing.T) {
	srv := startServer(t, Config{Params: testParams()})
	c := dial(t, srv)
	for _, junk := range [][]byte{
		{0xff, 0xff, 0xff, 0x7f, 0x01},              // a 2 GiB frame
		{0x00, 0x90, 0x00, 0x00, wire.TPublish},     // a frame over the request bound
		{0x01, 0x00, 0x00, 0x00, 0x55},              // an unknown type
		{0x02, 0x00, 0x00, 0x00, wire.TFetch, 0x01}, // a truncated fetch
	} {
		st := rawStream(t, c, srv)
		_ = st.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := st.Write(junk); err != nil {
			t.Fatal(err)
		}
		m, err := wire.ReadMsg(st)
		if err != nil || !isErr(m, wire.CodeMalformed) {
			t.Fatalf("junk %x: %#v %v", junk, m, err)
		}
		if _, err := wire.ReadMsg(st); err == nil {
			t.Fatalf("junk %x: the stream stayed open", junk)
		}
	}
	subscribe(t, srv, c, bobPrefix, 1)
}

// TestOfferShortPrefixes: subscriptions with prefixes shorter than a byte receive exactly their blocks.
func TestOfferShortPrefixes(t *testing.T) {
	params := benchParams()
	srv := startServer(t, Config{Params: params})
	ctx := tctx(t)
	prefixes := []wire.Prefix{{Bits: 1, Tag: [8]byte{0x80}}, {Bits: 3, Tag: [8]byte{0x40}}, {Bits: 8, Tag: [8]byte{0x41}}, {Bits: 16, Tag: [8]byte{0x41, 0x42}}}
	clients := make([]*client, len(prefixes))
	for i, p := range prefixes {
		clients[i] = dial(t, srv)
		subscribe(t, srv, clients[i], p, 4)
	}
	var blocks []*tangle.Block
	for range 300 {
		var tag tangle.Tag
		rand.Read(tag[:])
		if len(blocks)%5 == 0 {
			tag[0], tag[1] = 0x41, 0x42
		}
		blocks = append(blocks, mkBlock(t, params, tag, 200, time.Now()))
	}
	if err := srv.p.Offer(ctx, blocks); err != nil {
		t.Fatal(err)
	}
	for i, p := range prefixes {
		want := 0
		for _, b := range blocks {
			if p.Matches(b.Tag) {
				want++
			}
		}
		got, _ := fetchAll(t, clients[i].s, 0, 512, 4<<20)
		if len(got) != want || want == 0 {
			t.Errorf("prefix %d bits: %d blocks, want %d", p.Bits, len(got), want)
		}
	}
}
