package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/sqlitedb"
	"github.com/tanglemail/tanglemail/internal/storage"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/store"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

// TestStorageNodeLearnsNothing: bob is a real light client (StartLight) of a public storage node s;
// alice, a full node peered with s, sends him mail and chat through the Tangle while he is away (s
// stores it for his subscription) and while he is connected (s pushes it), and bob answers in the chat
// and receipts, publishing through s. Then every file under s's data directory — SQLite files with
// their -wal and -shm, the block store, blob and spool directories, peer table, keys — holds none of
// the mail and chat plaintext, neither bob's nor alice's tanglemail address in any form (bech32, mail
// form, raw key, its hex and base64, the binary address, the X25519 key, the tag key), nor bob's
// client peer ids, network addresses or grant token: checked while bob's blocks are stored, while s
// runs (with -wal files), and after s closed. What bob's client told s is what protocol.md §12.7 says:
// the subscription record is bob's prefix, retention, quota and a fresh key that is not his identity's,
// and the blocks stored for it are the sealed blocks exactly as gossiped.
func TestStorageNodeLearnsNothing(t *testing.T) {
	ctx := context.Background()
	params := tangle.ShortNet // 60 s TTLs: cheap proof of work, so the test is quick under -race
	s := startStorageNode(t, params)
	sdir := s.cfg.DataDir
	sees := watchConns(s.Node) // every connection s gets from now on: alice's and bob's
	alice := startNode(t, s.peerConfig(t, params))
	waitFor(t, "alice and the storage node to peer", 20*time.Second, func() bool { return alice.Network().PeerCount() == 1 })
	grant := s.grant(t)
	bcfg := lightConfig(t, t.TempDir(), s, grant)
	bob := startLight(t, bcfg)
	bobAddr, aliceAddr := bob.Identity().Address(), alice.Identity().Address()
	_, subSeed, ok, err := bob.light.db.Subscription(ctx, s.Network().ID())
	if err != nil || !ok {
		t.Fatalf("bob's subscription in light.db: %v %v", ok, err)
	}
	subKey := ed25519.NewKeyFromSeed(subSeed).Public().(ed25519.PublicKey)
	bobSeed := bob.Identity().Seed()
	bob.Close() // away: what alice sends now is stored for him

	markers := map[string]string{}
	mark := func(what string) string {
		var r [6]byte
		rand.Read(r[:])
		m := "TmSecret-" + what + "-" + hex.EncodeToString(r[:])
		markers[what] = m
		return m
	}
	sendMail := func(n int) {
		subj, body := mark(fmt.Sprintf("mail%d-subject", n)), mark(fmt.Sprintf("mail%d-body", n))
		submit(t, alice, []string{bobAddr.Mail()}, "From: Alice <"+aliceAddr.Mail()+">\r\nTo: Bob <"+bobAddr.Mail()+">\r\n"+
			"Subject: "+subj+"\r\nMessage-ID: <learns-"+fmt.Sprint(n)+"@tangle>\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\n\r\n"+
			strings.Repeat(body+" body line\r\n", 20))
	}
	aconv, err := alice.Chat().Direct(ctx, bobAddr.Mail())
	if err != nil {
		t.Fatal(err)
	}
	sendChat := func(n int) {
		if _, err := alice.Chat().Send(ctx, aconv.ID, mark(fmt.Sprintf("chat%d", n))); err != nil {
			t.Fatal(err)
		}
	}
	// check scans every file of the storage node for what it must not hold: the markers sent so far,
	// both addresses in any form, bob's secrets, and the peer ids and addresses of every connection bob's
	// client made to it so far; bob's subscription key, which it must keep, is the scan's control.
	aliceID := alice.Network().ID()
	check := func(when string, wantWAL bool) {
		t.Helper()
		forbidden := map[string][]byte{"the grant token": []byte(grant)}
		for what, m := range markers {
			forbidden["plaintext "+what] = []byte(m)
		}
		for who, a := range map[string]identity.Address{"bob": bobAddr, "alice": aliceAddr} {
			x, err := a.X25519PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			tagKey := a.TagKey()
			for form, b := range map[string][]byte{
				"address":              []byte(a.String()),
				"address (upper case)": []byte(strings.ToUpper(a.String())),
				"mail address":         []byte(a.Mail()),
				"public key":           a.Key,
				"binary address":       a.Binary(),
				"public key (hex)":     []byte(hex.EncodeToString(a.Key)),
				"public key (HEX)":     []byte(strings.ToUpper(hex.EncodeToString(a.Key))),
				"public key (base64)":  []byte(base64.RawStdEncoding.EncodeToString(a.Key)),
				"public key (b64url)":  []byte(base64.RawURLEncoding.EncodeToString(a.Key)),
				"X25519 key":           x.Bytes(),
				"tag key":              tagKey[:],
			} {
				forbidden[who+"'s "+form] = b
			}
		}
		forbidden["bob's identity seed"] = bobSeed
		forbidden["bob's subscription private key"] = subSeed
		clientConns := 0
		for _, c := range sees.list() {
			if c.peer.String() == aliceID {
				continue
			}
			clientConns++
			forbidden["bob's client peer id "+c.peer.String()] = []byte(c.peer.String())
			forbidden["bob's client peer id (binary) "+c.peer.String()] = []byte(c.peer)
			forbidden["bob's client address "+c.addr] = []byte(c.addr)
			if ip, port, ok := tcpHostPort(c.addr); ok {
				forbidden["bob's client address "+ip+":"+port] = []byte(ip + ":" + port)
			}
		}
		if clientConns == 0 {
			t.Fatalf("%s: the storage node saw no connection from bob's client", when)
		}
		res := scanFiles(t, sdir, forbidden, map[string][]byte{"the subscription key": subKey})
		for _, what := range res.found {
			t.Errorf("%s: %s", when, what)
		}
		if len(res.control["the subscription key"]) == 0 {
			t.Errorf("%s: the scan did not find the subscription key the provider must keep: it reads nothing", when)
		}
		if wantWAL && res.wal == 0 {
			t.Errorf("%s: no -wal file scanned", when)
		}
		t.Logf("%s: %d needles, %d client connections; %d files, %d bytes scanned (%d -wal); the subscription key is in %q",
			when, len(forbidden), clientConns, res.files, res.bytes, res.wal, res.control["the subscription key"])
	}

	sendMail(1)
	sendChat(1)
	waitFor(t, "the storage node to store alice's mail and chat for bob", 20*time.Second, func() bool {
		subs := s.p.Subscriptions()
		return len(subs) == 1 && subs[0].Blocks >= 2
	})

	// The subscription record and the stored blocks, read from storage.db as the operator could.
	bits := uint8(min(bob.Identity().TagBits(), wire.MaxPrefixBits))
	tk := bob.Identity().TagKey()
	var tag tangle.Tag
	copy(tag[:], tk[:8])
	prefix := wire.PrefixOf(tag, bits)
	db, err := sqlitedb.Open(filepath.Join(sdir, storage.FileName), sqlitedb.Options{Pragmas: []string{"query_only(1)", "busy_timeout(10000)"}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var (
		subID, ptag, pkey   []byte
		pbits               uint8
		retention, subCount int
		quota               int64
	)
	if err := db.QueryRow(`SELECT id, prefix_bits, prefix_tag, pubkey, retention_days, quota_bytes, (SELECT count(*) FROM subs) FROM subs`).
		Scan(&subID, &pbits, &ptag, &pkey, &retention, &quota, &subCount); err != nil || subCount != 1 {
		t.Fatalf("storage.db subs: %d rows, %v", subCount, err)
	}
	switch {
	case pbits != prefix.Bits || !bytes.Equal(ptag, prefix.Tag[:]):
		t.Errorf("the provider keeps prefix %d/%x, want bob's %d/%x and no bit more", pbits, ptag, prefix.Bits, prefix.Tag)
	case !bytes.Equal(pkey, subKey):
		t.Errorf("the provider keeps key %x, want the subscription's own %x", pkey, subKey)
	case bytes.Equal(pkey, bobAddr.Key):
		t.Error("the subscription key is bob's identity key")
	case retention != DefaultStorageRetentionDays || quota != DefaultStorageQuotaMiB<<20:
		t.Errorf("retention %d days, quota %d bytes: not what bob asked", retention, quota)
	}
	rows, err := db.Query(`SELECT id, raw FROM blocks WHERE sub = ?`, subID)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for rows.Next() {
		var id, raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			t.Fatal(err)
		}
		stored++
		b, err := tangle.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if bid := b.ID(); !prefix.Matches(b.Tag) || bid != tangle.ID(blake2b.Sum256(raw)) || !bytes.Equal(id, bid[:]) {
			t.Fatalf("stored block %x: not of bob's prefix, or not under its id", id)
		}
		if own, err := s.Blocks().Get(b.ID()); err != nil || !bytes.Equal(own.Raw, raw) {
			t.Fatalf("stored block %s differs from the one gossiped (%v)", b.ID().Short(), err)
		}
	}
	if err := rows.Err(); err != nil || stored < 2 {
		t.Fatalf("%d blocks stored for bob: %v", stored, err)
	}

	check("while bob's blocks are stored", true)

	// Bob comes back: he gets the stored mail and chat, then new ones live, answers, and receipts.
	bob = startLight(t, bcfg)
	sendMail(2)
	sendChat(2)
	waitFor(t, "bob's INBOX and Chats", 20*time.Second, func() bool {
		return mailboxCount(t, bob, store.RoleInbox) == 2 && mailboxCount(t, bob, store.RoleChats) == 2
	})
	subjects, _ := imapSubjects(t, bob, "INBOX")
	slices.Sort(subjects)
	if want := []string{markers["mail1-subject"], markers["mail2-subject"]}; !slices.Equal(subjects, want) {
		t.Fatalf("bob's INBOX: %q, want %q", subjects, want)
	}
	bconv, err := bob.Chat().Direct(ctx, aliceAddr.Mail())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Chat().Send(ctx, bconv.ID, mark("reply")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's answer at alice", 20*time.Second, func() bool { return mailboxCount(t, alice, store.RoleChats) == 3 })
	waitFor(t, "bob's receipts at alice (published through the storage node)", 20*time.Second, func() bool {
		return alice.outbox.Stats().Delivered >= 2
	})
	waitFor(t, "bob's client to release what it filed", 20*time.Second, func() bool {
		subs := s.p.Subscriptions()
		return len(subs) == 1 && subs[0].Blocks == 0
	})
	if st := bob.LightClients()[0].Stats(); st.Fetched == 0 || st.Pushed == 0 || st.Published == 0 {
		t.Fatalf("bob's light client did not fetch, get pushes and publish: %+v", st)
	}

	check("while s runs", true)
	for _, f := range must(filepath.Glob(filepath.Join(sdir, storage.FileName+"*"))) {
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", filepath.Base(f), fi.Mode().Perm())
		}
	}
	db.Close()
	bob.Close()
	alice.Close()
	s.Close()
	check("after s closed", false)
}

// tcpHostPort splits /ip4/<ip>/tcp/<port>[/…] into ip and port.
func tcpHostPort(addr string) (ip, port string, ok bool) {
	f := strings.Split(strings.TrimPrefix(addr, "/"), "/")
	if len(f) < 4 || (f[0] != "ip4" && f[0] != "ip6") || (f[2] != "tcp" && f[2] != "udp") {
		return "", "", false
	}
	return f[1], f[3], true
}

// scanResult is what scanFiles read: the forbidden strings it found ("what in file"), the files each
// control string is in, and the files, bytes and -wal files read.
type scanResult struct {
	found             []string
	control           map[string][]string
	files, bytes, wal int
}

// scanFiles reads every regular file under dir, recursively, and looks for each forbidden and control
// byte string. A file that disappears meanwhile (a -wal or spool file) is skipped.
func scanFiles(t *testing.T, dir string, forbidden, control map[string][]byte) scanResult {
	t.Helper()
	res := scanResult{control: map[string][]string{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		res.files++
		res.bytes += len(data)
		if strings.HasSuffix(p, "-wal") {
			res.wal++
		}
		for what, b := range forbidden {
			if bytes.Contains(data, b) {
				res.found = append(res.found, what+" in "+rel)
			}
		}
		for what, b := range control {
			if bytes.Contains(data, b) {
				res.control[what] = append(res.control[what], rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.found)
	return res
}
