package node

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

// testConfig is a loopback-only node on the devnet: no mDNS, no DHT, ephemeral ports.
func testConfig(_ testing.TB, dir string) Config { return DevnetConfig(dir) }

// startNode starts a node on cfg, closed when the test ends.
func startNode(tb testing.TB, cfg Config) *Node {
	tb.Helper()
	n, err := Start(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testwait.For(t, what, d, cond)
}

func TestStartStatusAndRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n, err := Start(ctx, testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if !n.CreatedIdentity() {
		t.Fatal("first start did not create an identity")
	}
	addr := n.Identity().Address().Mail()
	for _, f := range []string{IdentityFile, PasswordFile, APIFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir has mode %v, want 0700", fi.Mode().Perm())
	}
	// Every file the node made — databases with their -wal and -shm files included — is the owner's
	// only, not just reachable through the 0700 directory (a copied or moved file keeps its mode).
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || d.Name() == CertFile { // the certificate is public
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: group or others may read it", strings.TrimPrefix(path, dir), fi.Mode().Perm())
		}
		return nil
	})

	info, pw, err := ReadAPIInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", info.URL+"/api/status", nil)
	req.SetBasicAuth("x", pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var st api.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Address != addr || st.Network != "tanglemail-dev" || st.P2P.PeerID == "" {
		t.Fatalf("status %+v, err %v", st, err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, APIFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("api.json left behind after Close: %v", err)
	}

	// Restart: same identity, same password, not created again.
	n2 := startNode(t, testConfig(t, dir))
	if n2.CreatedIdentity() || n2.Identity().Address().Mail() != addr || n2.Password() != pw {
		t.Fatal("restart changed the identity or the password")
	}
}

// TestNonLoopbackAPIRefused: the API listens on loopback only (docs/api.md, "Where it listens").
func TestNonLoopbackAPIRefused(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.APIListen = "0.0.0.0:0"
	if _, err := Start(context.Background(), cfg); err == nil {
		t.Fatal("non-loopback API address accepted")
	}
	for _, a := range []string{"[::]:4581", "192.0.2.1:4581", "example.org:4581", "10.0.0.1:0", "4581"} {
		if checkLoopback(a) == nil {
			t.Errorf("%s accepted", a)
		}
	}
	for _, a := range []string{"127.0.0.1:4581", "127.0.0.2:0", "[::1]:4581", "localhost:4581"} {
		if err := checkLoopback(a); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
}

func TestWrongPassphrase(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Passphrase = []byte("right")
	if _, err := CreateIdentity(dir, cfg.Passphrase, 8); err != nil {
		t.Fatal(err)
	}
	cfg.Passphrase = []byte("wrong")
	_, err := Start(context.Background(), cfg)
	if !errors.Is(err, identity.ErrWrongPassphrase) {
		t.Fatalf("got %v, want ErrWrongPassphrase", err)
	}
}

// Two nodes peered through --bootstrap see each other, and a block published on one is stored by the
// other.
func TestTwoNodesExchangeBlocks(t *testing.T) {
	ctx := context.Background()
	a := startNode(t, testConfig(t, t.TempDir()))
	cfg := testConfig(t, t.TempDir())
	cfg.Bootstrap = a.Network().Addrs()
	b := startNode(t, cfg)
	// Connected is not enough for gossip: wait until each node knows the other subscribes to the topic.
	waitFor(t, "peering on the gossip topic", 10*time.Second, func() bool {
		sa, sb := a.Network().Status(), b.Network().Status()
		return len(sa.Topics) == 1 && sa.Topics[0].Peers == 1 && len(sb.Topics) == 1 && sb.Topics[0].Peers == 1
	})

	parents := a.Blocks().SelectParents(0, 4)
	blk, err := tangle.DevNet.Build(ctx, tangle.Header{
		Time:        time.Now().UnixMilli(),
		TTL:         3600,
		Parents:     parents,
		PayloadType: tangle.PayloadSealed,
		Payload:     make([]byte, 304),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Network().Publish(ctx, blk); err != nil {
		t.Fatal(err)
	}
	// A block published in the first second or so after two nodes connect can miss gossip (GossipSub
	// may know the peer's subscription before its own stream to the peer is up); anti-entropy, every
	// 10 s, delivers it then. The deadline covers that path.
	waitFor(t, "the block at the other node", 30*time.Second, func() bool {
		ok, _ := b.Blocks().Has(blk.ID())
		return ok
	})
	st := b.Status()
	if st.P2P.Blocks != 1 {
		t.Fatalf("status counts %d blocks, want 1", st.P2P.Blocks)
	}
}

func TestShardsFor(t *testing.T) {
	id, err := identity.Generate(2)
	if err != nil {
		t.Fatal(err)
	}
	if got := shardsFor(id, 0); len(got) != 1 || got[0] != 0 {
		t.Fatalf("s=0: %v", got)
	}
	// k = 2 < s = 4: the 4 shards that share the tag key's first 2 bits.
	got := shardsFor(id, 4)
	key := id.TagKey()
	prefix := uint32(key[0] >> 6)
	if len(got) != 4 {
		t.Fatalf("s=4, k=2: %v", got)
	}
	for _, s := range got {
		if s>>2 != prefix {
			t.Fatalf("shard %d does not start with the tag prefix %b", s, prefix)
		}
	}
	id16, _ := identity.Generate(16)
	if got := shardsFor(id16, 4); len(got) != 1 || got[0] != uint32(id16.TagKey()[0]>>4) {
		t.Fatalf("s=4, k=16: %v", got)
	}
}

func TestSecondNodeOnSameDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	a, err := Start(context.Background(), testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(context.Background(), testConfig(t, dir))
	if err == nil || !strings.Contains(err.Error(), "another tanglemail node") {
		t.Fatalf("second node on the same data dir: %v", err)
	}
	a.Close()
	b, err := Start(context.Background(), testConfig(t, dir))
	if err != nil {
		t.Fatalf("after the first node stopped: %v", err)
	}
	b.Close()
}
