package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestStorageNodeLearnsNothing: a public storage node keeps the sealed blocks of mail to bob (whose node
// is off) for bob's subscription, exactly as gossiped, and pushes them live to bob's watching client;
// its data files hold none of the mails' plaintext and no address or key of bob.
func TestStorageNodeLearnsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	scfg := testConfig(t, t.TempDir())
	scfg.Storage = StorageConfig{Enabled: true, Public: true}
	s, err := Start(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acfg := testConfig(t, t.TempDir())
	acfg.Bootstrap = s.Network().Addrs()
	alice, err := Start(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, _, err := LoadOrCreateIdentity(t.TempDir(), nil, 12)
	if err != nil {
		t.Fatal(err)
	}
	bobAddr := bob.Address().Mail()
	tk := bob.TagKey()
	var tag tangle.Tag
	copy(tag[:], tk[:8])
	prefix := wire.PrefixOf(tag, 12)

	if st := s.StorageStatus(); !st.Enabled || !st.Public || len(st.Addrs) == 0 {
		t.Fatalf("storage status %+v", st)
	}
	g, err := s.StorageGrant(ctx, api.StorageGrantRequest{QuotaMiB: 16, Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	_, _, sess := dialStorage(t, ctx, g.Provider, scfg.Network.ID)
	subscribe(t, ctx, sess, wire.CreateRequest{Prefix: prefix, QuotaMiB: 16, RetentionDays: 30, Grant: g.Token}, wire.Active)

	// Live push: the public node pushes bob's blocks as it stores them.
	pushed, err := sess.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice peered with the storage node", 30*time.Second, func() bool { return alice.Network().PeerCount() == 1 })
	const secret = "Tangle-storage-secret-plaintext-7d41"
	for i := range 3 {
		raw := "From: Alice <" + alice.Identity().Address().Mail() + ">\r\n" +
			"To: Bob <" + bobAddr + ">\r\n" +
			"Subject: " + secret + " subject\r\n" +
			"Message-ID: <storage-" + string(rune('a'+i)) + "@tangle>\r\n" +
			"Date: Tue, 24 Nov 2026 12:00:00 +0000\r\n" +
			"\r\n" +
			strings.Repeat(secret+" body line\r\n", 20)
		submit(t, alice, []string{bobAddr}, raw)
	}
	var st wire.Status
	waitFor(t, "bob's blocks stored by the provider", 90*time.Second, func() bool {
		st, err = sess.Status(ctx)
		return err == nil && st.Blocks >= 3
	})
	select {
	case p := <-pushed:
		if b, err := tangle.Decode(p.Block); err != nil || !prefix.Matches(b.Tag) || p.Cursor < 1 {
			t.Fatalf("pushed block: cursor %d, %v", p.Cursor, err)
		}
	case <-ctx.Done():
		t.Fatal("nothing pushed")
	}
	got, _, _, err := sess.Fetch(ctx, 0, 100, 4<<20)
	if err != nil || len(got) < 3 {
		t.Fatalf("fetched %d blocks: %v", len(got), err)
	}
	for _, p := range got {
		b, err := tangle.Decode(p.Block)
		if err != nil || !prefix.Matches(b.Tag) {
			t.Fatalf("stored block: %v", err)
		}
		own, err := s.Blocks().Get(tangle.ID(blake2b.Sum256(p.Block)))
		if err == nil && !bytes.Equal(own.Raw, p.Block) {
			t.Fatal("stored block differs from the one gossiped")
		}
	}

	// The provider's data files: no plaintext, no address or key of bob.
	forbidden := map[string][]byte{
		"plaintext":           []byte(secret),
		"bob's address":       []byte(bobAddr),
		"bob's address (hex)": []byte(hex.EncodeToString(bob.Address().Key)),
		"bob's public key":    bob.Address().Key,
	}
	files, _ := filepath.Glob(filepath.Join(scfg.DataDir, "storage.db*"))
	if len(files) == 0 {
		t.Fatal("no storage.db")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for what, b := range forbidden {
			if bytes.Contains(data, b) {
				t.Errorf("%s contains %s", filepath.Base(f), what)
			}
		}
		if fi, _ := os.Stat(f); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", filepath.Base(f), fi.Mode().Perm())
		}
	}
	t.Logf("%d blocks for bob stored (%d bytes); %d storage files checked", st.Blocks, st.UsedBytes, len(files))
}
