package gateway

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/protocoldoc"
)

func seedID(t testing.TB, b byte) *identity.Identity {
	t.Helper()
	id, err := identity.FromSeed(bytes.Repeat([]byte{b}, 32), 8)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var vectorTime = time.UnixMilli(1767225600000) // 2026-01-01T00:00:00Z

func vectorClaim(t testing.TB) *ClaimRequest {
	var nonce [16]byte
	for i := range nonce {
		nonce[i] = byte(i)
	}
	c, err := SignClaim(seedID(t, 1), OpClaim, seedID(t, 2).Address(), "Alice", "gw.test", vectorTime, nonce)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProtocolVectorsClaim checks protocol.md §15.2 against the code.
func TestProtocolVectorsClaim(t *testing.T) {
	c := vectorClaim(t)
	want := map[string]string{
		"claimant_seed": hex.EncodeToString(bytes.Repeat([]byte{1}, 32)),
		"gateway_seed":  hex.EncodeToString(bytes.Repeat([]byte{2}, 32)),
		"time_ms":       "1767225600000",
		"nonce":         "000102030405060708090a0b0c0d0e0f",
		"address":       "alice@gw.test",
		"request":       hex.EncodeToString(c.Encode()),
	}
	protocoldoc.Check(t, protocoldoc.Path, "### 15.2 Test vector", want)
	d, err := DecodeClaim(c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if d.Addr() != "alice@gw.test" || !d.Claimant.Equal(seedID(t, 1).Address()) || !d.Time.Equal(vectorTime) {
		t.Fatalf("decoded %+v", d)
	}
}

func TestDecodeClaimRejects(t *testing.T) {
	good := vectorClaim(t).Encode()
	cases := map[string][]byte{
		"empty":     nil,
		"short":     good[:40],
		"trailing":  append(bytes.Clone(good), 0),
		"truncated": good[:len(good)-1],
		"version":   append([]byte{9}, good[1:]...),
	}
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1
	cases["signature"] = bad
	op := bytes.Clone(good)
	op[1] = 7
	cases["op"] = op
	for name, b := range cases {
		if _, err := DecodeClaim(b); !errors.Is(err, ErrClaimMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := SignClaim(seedID(t, 1), OpClaim, seedID(t, 2).Address(), "a b", "gw.test", vectorTime, [16]byte{}); err == nil {
		t.Error("a local part with a space was signed")
	}
}

func FuzzDecodeClaim(f *testing.F) {
	good := vectorClaim(f).Encode()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeClaim(b)
		if err != nil {
			if !errors.Is(err, ErrClaimMalformed) {
				t.Fatalf("error %v does not wrap ErrClaimMalformed", err)
			}
			return
		}
		if !bytes.Equal(c.Encode(), b) {
			t.Fatal("decoded request does not encode to its input")
		}
	})
}

func TestClaimsApply(t *testing.T) {
	ctx := context.Background()
	gw, op := seedID(t, 2), seedID(t, 3)
	alice, bob := seedID(t, 1), seedID(t, 4)
	path := filepath.Join(t.TempDir(), ClaimsFile)
	cl, err := OpenClaims(path, gw.Address(), []string{"GW.test"}, op.Address(), Policy{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	now := vectorTime
	n := byte(0)
	req := func(id *identity.Identity, o byte, local, domain string, at time.Time) *ClaimRequest {
		n++
		r, err := SignClaim(id, o, gw.Address(), local, domain, at, [16]byte{n})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := req(alice, OpClaim, "alice", "gw.test", now)
	if err := cl.Apply(ctx, first, now); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		r    *ClaimRequest
		want error
	}{
		"replay":       {first, ErrClaimReplayed},
		"taken":        {req(bob, OpClaim, "alice", "gw.test", now), ErrClaimTaken},
		"role":         {req(bob, OpClaim, "postmaster", "gw.test", now), ErrClaimRole},
		"domain":       {req(bob, OpClaim, "bob", "other.test", now), ErrClaimGateway},
		"stale":        {req(bob, OpClaim, "bob", "gw.test", now.Add(-6*time.Minute)), ErrClaimStale},
		"future":       {req(bob, OpClaim, "bob", "gw.test", now.Add(6*time.Minute)), ErrClaimStale},
		"revoke other": {req(bob, OpRevoke, "alice", "gw.test", now), ErrClaimNone},
	} {
		if err := cl.Apply(ctx, c.r, now); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
	other, _ := SignClaim(bob, OpClaim, op.Address(), "bob", "gw.test", now, [16]byte{99})
	if err := cl.Apply(ctx, other, now); !errors.Is(err, ErrClaimGateway) {
		t.Errorf("claim for another gateway: %v", err)
	}
	if err := cl.Apply(ctx, req(alice, OpClaim, "alice", "gw.test", now), now); err != nil {
		t.Errorf("claiming one's own address again: %v", err)
	}
	// Durable: reopen and look up.
	cl.Close()
	cl, err = OpenClaims(path, gw.Address(), []string{"gw.test"}, op.Address(), Policy{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for addr, want := range map[string]*identity.Identity{"Alice@GW.test": alice, "postmaster@gw.test": op, "abuse@gw.test": op} {
		to, ok, err := cl.Lookup(ctx, addr)
		if err != nil || !ok || !to.Equal(want.Address()) {
			t.Errorf("Lookup(%s) = %v, %v, %v", addr, to, ok, err)
		}
	}
	for _, addr := range []string{"bob@gw.test", "alice@other.test", "nobody"} {
		if _, ok, err := cl.Lookup(ctx, addr); ok || err != nil {
			t.Errorf("Lookup(%s) = %v, %v", addr, ok, err)
		}
	}
	if err := cl.Apply(ctx, req(alice, OpRevoke, "alice", "gw.test", now), now); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := cl.Lookup(ctx, "alice@gw.test"); ok {
		t.Error("revoked claim still delivers")
	}
	if err := cl.Apply(ctx, req(bob, OpClaim, "alice", "gw.test", now), now); err != nil {
		t.Errorf("claiming a revoked address: %v", err)
	}
}

func TestClaimsAllowlist(t *testing.T) {
	ctx := context.Background()
	gw, alice, bob := seedID(t, 2), seedID(t, 1), seedID(t, 4)
	cl, err := OpenClaims(filepath.Join(t.TempDir(), ClaimsFile), gw.Address(), []string{"gw.test"}, gw.Address(),
		Policy{Allow: []identity.Address{alice.Address()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ra, _ := SignClaim(alice, OpClaim, gw.Address(), "alice", "gw.test", vectorTime, [16]byte{1})
	rb, _ := SignClaim(bob, OpClaim, gw.Address(), "bob", "gw.test", vectorTime, [16]byte{2})
	if err := cl.Apply(ctx, ra, vectorTime); err != nil {
		t.Fatal(err)
	}
	if err := cl.Apply(ctx, rb, vectorTime); !errors.Is(err, ErrClaimPolicy) {
		t.Fatalf("bob's claim: %v", err)
	}
}
