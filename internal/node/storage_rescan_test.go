package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestStorageRescanOldBlockAfterCrash: a mail to bob issued two hours ago (as catch-up brings them after
// a downtime) reaches the storage node's block store but not its provider — the node stops before its
// in-memory feed offered it — and the node restarts. The rescan at start stores it for bob's
// subscription, and bob's light client gets it. With a rescan window of an hour it was never stored.
func TestStorageRescanOldBlockAfterCrash(t *testing.T) {
	ctx := context.Background()
	params := tangle.DevNet
	scfg := DevnetConfig(t.TempDir())
	scfg.Network = params
	scfg.Storage = StorageConfig{Enabled: true, Public: true}
	n, err := Start(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	s := &storageNode{Node: n, p: n.Storage()}
	bcfg := lightConfig(t, t.TempDir(), s, s.grant(t))
	bob := startLight(t, bcfg)
	bobAddr := bob.Identity().Address()
	bob.Close()

	alice, err := identity.Generate(8)
	if err != nil {
		t.Fatal(err)
	}
	issued := time.Now().Add(-2 * time.Hour)
	const subject = "issued two hours before the crash"
	raw := fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <rescan@tangle>\r\n"+
		"Date: %s\r\n\r\nstored by the node, not yet by its provider\r\n", alice.Address().Mail(), bobAddr.Mail(), subject,
		issued.Format(time.RFC1123Z))
	payload, err := seal.Seal(alice, bobAddr, params.ID, seal.KindMail, issued, mail.EncodeInline(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := params.Build(ctx, tangle.Header{Time: issued.UnixMilli(), TTL: 3 * 3600, Parents: []tangle.ID{tangle.Genesis},
		Tag: bobAddr.MakeTag(nil), PayloadType: tangle.PayloadSealed, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	// Straight into the block store: the p2p layer's OnBlock (and so the provider's feed) never hears
	// of it, as when the node stops or crashes between the block store's commit and the provider's.
	if added, err := s.Blocks().Put(ctx, b); err != nil || !added[0] {
		t.Fatalf("block store Put: %v %v", added, err)
	}
	if subs := s.p.Subscriptions(); len(subs) != 1 || subs[0].Blocks != 0 {
		t.Fatalf("before the restart the provider holds %+v, want bob's subscription, empty", subs)
	}
	s.Close()

	n, err = Start(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	s = &storageNode{Node: n, p: n.Storage()}
	waitFor(t, "the restarted storage node to store the old block for bob", 20*time.Second, func() bool {
		subs := s.p.Subscriptions()
		return len(subs) == 1 && subs[0].Blocks == 1
	})
	bcfg.StorageProviders = []string{s.addr()} // the same peer id (p2p.key), a new port
	bob = startLight(t, bcfg)
	waitFor(t, "the mail in bob's INBOX", 20*time.Second, func() bool { return mailboxCount(t, bob, store.RoleInbox) == 1 })
	if subjects, _ := imapSubjects(t, bob, "INBOX"); len(subjects) != 1 || subjects[0] != subject {
		t.Fatalf("bob's INBOX: %q", subjects)
	}
}
