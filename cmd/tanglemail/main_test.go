package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/testwait"
	"github.com/tanglemail/tanglemail/internal/version"
)

// runCLI runs the CLI in-process with the given environment and returns exit code, stdout, stderr.
func runCLI(t *testing.T, envv map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cmdEnv{stdout: &out, stderr: &errb, getenv: func(k string) string { return envv[k] }, stop: make(chan struct{})}
	code := run(env, args)
	return code, out.String(), errb.String()
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := runCLI(t, nil, c.name, "--help")
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			if !strings.Contains(out, "Usage: tanglemail "+c.name) || !strings.Contains(out, c.summary) {
				t.Fatalf("help does not describe the command:\n%s", out)
			}
			fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
			c.flags(fs, func(string) string { return "" })
			fs.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(out, "--"+f.Name) || !strings.Contains(out, envName(f.Name)) {
					t.Errorf("help lacks flag --%s or its variable %s", f.Name, envName(f.Name))
				}
			})
		})
	}
	code, out, _ := runCLI(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "Commands:") {
		t.Fatalf("top-level help: exit %d\n%s", code, out)
	}
}

func TestUnknownCommandAndFlag(t *testing.T) {
	if code, _, errs := runCLI(t, nil, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown command: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "address", "--nope"); code != 2 || !strings.Contains(errs, "--help") {
		t.Fatalf("unknown flag: exit %d, %q", code, errs)
	}
}

func TestInitAndAddress(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := runCLI(t, nil, "init", "--data-dir", dir, "--tag-bits", "12")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	fi, err := os.Stat(filepath.Join(dir, "identity.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, mode %v", err, fi.Mode())
	}
	code, out2, errs := runCLI(t, nil, "address", "--data-dir", dir, "--json")
	if code != 0 {
		t.Fatalf("address: exit %d: %s", code, errs)
	}
	var a struct {
		Address string `json:"address"`
		Mail    string `json:"mail"`
		TagBits int    `json:"tag_bits"`
	}
	if err := json.Unmarshal([]byte(out2), &a); err != nil {
		t.Fatal(err)
	}
	parsed, err := identity.ParseAddress(a.Mail)
	if err != nil || parsed.TagBits != 12 || !strings.Contains(out, a.Mail) {
		t.Fatalf("address %+v parsed %+v err %v; init said %q", a, parsed, err, out)
	}
	// A second init must not overwrite the identity.
	if code, _, errs := runCLI(t, nil, "init", "--data-dir", dir); code != 1 || !strings.Contains(errs, "refusing to overwrite") {
		t.Fatalf("second init: exit %d: %s", code, errs)
	}
	// The QR code is printed by default.
	code, out3, _ := runCLI(t, nil, "address", "--data-dir", dir)
	if code != 0 || !strings.Contains(out3, a.Mail) || !strings.Contains(out3, "█") {
		t.Fatalf("address with QR: exit %d\n%s", code, out3)
	}
}

func TestPassphraseProtectedIdentity(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, nil, "init", "--data-dir", dir, "--passphrase-file", pf); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	if code, _, errs := runCLI(t, nil, "address", "--data-dir", dir); code != 1 || !strings.Contains(strings.ToLower(errs), "passphrase") {
		t.Fatalf("address without passphrase: exit %d: %s", code, errs)
	}
	if code, _, errs := runCLI(t, nil, "address", "--data-dir", dir, "--passphrase-file", pf); code != 0 {
		t.Fatalf("address with passphrase: %s", errs)
	}
}

func TestFlagPrecedence(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "tanglemail.conf")
	if err := os.WriteFile(conf, []byte("# comment\ntag-bits = 3\njson = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(env map[string]string, args ...string) *initFlags {
		fs := flag.NewFlagSet("init", flag.ContinueOnError)
		f := initCommand().flags(fs, func(k string) string { return env[k] }).(*initFlags)
		if err := parseFlags(fs, args, func(k string) string { return env[k] }); err != nil {
			// "json" is not an init flag: the config file is rejected with a clear error.
			if !strings.Contains(err.Error(), `unknown setting "json"`) {
				t.Fatalf("parse: %v", err)
			}
		}
		return f
	}
	if f := parse(nil, "--data-dir", dir); f.tagBits != 3 {
		t.Fatalf("config file: tag bits %d, want 3", f.tagBits)
	}
	if f := parse(map[string]string{"TANGLEMAIL_TAG_BITS": "5"}, "--data-dir", dir); f.tagBits != 5 {
		t.Fatalf("environment over config: tag bits %d, want 5", f.tagBits)
	}
	if f := parse(map[string]string{"TANGLEMAIL_TAG_BITS": "5"}, "--data-dir", dir, "--tag-bits", "7"); f.tagBits != 7 {
		t.Fatalf("flag over environment: tag bits %d, want 7", f.tagBits)
	}
	if f := parse(map[string]string{"TANGLEMAIL_DATA_DIR": dir}); f.dataDir != dir || f.tagBits != 3 {
		t.Fatalf("data dir from environment: %+v", f)
	}
	// An explicitly named config file must exist.
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	initCommand().flags(fs, func(string) string { return "" })
	if err := parseFlags(fs, []string{"--config", filepath.Join(dir, "missing.conf")}, func(string) string { return "" }); err == nil {
		t.Fatal("missing explicit config file accepted")
	}
}

func TestStatusWithoutNode(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := runCLI(t, nil, "status", "--data-dir", dir)
	if code != 1 || !strings.Contains(errs, "no node is running") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

// startNode runs "tanglemail node" in-process on loopback and returns when its API is up.
func startNode(t *testing.T, dir string, extra ...string) (stop func() int, out *testwait.Buffer) {
	t.Helper()
	out = &testwait.Buffer{}
	stopc := make(chan struct{})
	env := &cmdEnv{stdout: out, stderr: out, getenv: func(string) string { return "" }, stop: stopc}
	args := append([]string{"node", "--data-dir", dir, "--network", "tanglemail-dev",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--dht=false", "--api-listen", "127.0.0.1:0", "--smtp-listen", "127.0.0.1:0", "--imap-listen", "127.0.0.1:0"}, extra...)
	done := make(chan int, 1)
	go func() { done <- run(env, args) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Stop with Ctrl-C") {
		select {
		case code := <-done:
			t.Fatalf("node exited with %d:\n%s", code, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var once sync.Once
	code := 0
	stop = func() int {
		once.Do(func() {
			close(stopc)
			select {
			case code = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("node did not stop within 20 s")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stop, out
}

func TestNodeStatusAndPeers(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	stopA, outA := startNode(t, dirA)
	if !strings.Contains(outA.String(), "Created a new identity") || !strings.Contains(outA.String(), "@tangle") {
		t.Fatalf("first start does not say what it did:\n%s", outA.String())
	}
	// B bootstraps from A's printed address.
	var bootstrap string
	for _, line := range strings.Split(outA.String(), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Peer addrs:"); ok {
			bootstrap = strings.Fields(rest)[0]
		}
	}
	if bootstrap == "" {
		t.Fatalf("no peer address printed:\n%s", outA.String())
	}
	_, outB := startNode(t, dirB, "--bootstrap", bootstrap)
	defer func() {
		if t.Failed() {
			t.Logf("A:\n%s\nB:\n%s", outA.String(), outB.String())
		}
	}()

	deadline := time.Now().Add(15 * time.Second)
	for {
		code, out, errs := runCLI(t, nil, "peers", "--data-dir", dirA, "--json")
		if code != 0 {
			t.Fatalf("peers: exit %d: %s", code, errs)
		}
		var peers []map[string]any
		if err := json.Unmarshal([]byte(out), &peers); err != nil {
			t.Fatalf("peers --json: %v\n%s", err, out)
		}
		if len(peers) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A never saw B as a peer: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, out, errs := runCLI(t, nil, "status", "--data-dir", dirA)
	if code != 0 || !strings.Contains(out, "Peers     1 connected") || !strings.Contains(out, "tanglemail-dev") ||
		!strings.Contains(out, "Version   tanglemail "+version.Get().String()) {
		t.Fatalf("status: exit %d: %s\n%s", code, errs, out)
	}
	code, out, _ = runCLI(t, nil, "peers", "--data-dir", dirB)
	if code != 0 || !strings.Contains(out, "outbound") {
		t.Fatalf("peers on B: exit %d\n%s", code, out)
	}
	if code := stopA(); code != 0 {
		t.Fatalf("node exited with %d on stop", code)
	}
	if code, _, errs := runCLI(t, nil, "status", "--data-dir", dirA); code != 1 || !strings.Contains(errs, "no node is running") {
		t.Fatalf("status after stop: exit %d: %s", code, errs)
	}
}

func TestListFlagReplacesDefault(t *testing.T) {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	f := nodeCommand().flags(fs, func(string) string { return "" }).(*nodeFlags)
	if err := parseFlags(fs, []string{"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--p2p-listen", "/ip4/127.0.0.1/udp/0/quic-v1"}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	want := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	if strings.Join(f.p2pListen.values, " ") != strings.Join(want, " ") {
		t.Fatalf("p2p-listen %v, want %v (the default must be replaced, not extended)", f.p2pListen.values, want)
	}
}

// TestDevnetLightPays: with --light and the dev chain (the default), the light client pays alice for its
// subscription from its own funded wallet before it starts — the pay → store → fetch path that the
// README's run command shows — so its status shows an active subscription paid for 30 days and a wallet
// that paid.
func TestDevnetLightPays(t *testing.T) {
	out := &testwait.Buffer{}
	stopc := make(chan struct{})
	env := &cmdEnv{stdout: out, stderr: io.Discard, getenv: func(string) string { return "" }, stop: stopc}
	done := make(chan int, 1)
	dir := t.TempDir() // before the cleanup below, so removed after the devnet stopped
	go func() { done <- run(env, []string{"devnet", "--nodes", "1", "--light", "--json", "--dir", dir}) }()
	t.Cleanup(func() {
		close(stopc)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("devnet did not stop")
		}
	})
	testwait.For(t, "devnet to print its two nodes", 90*time.Second, func() bool {
		select {
		case code := <-done:
			t.Fatalf("devnet exited with %d: %s", code, out.String())
		default:
		}
		return strings.Count(out.String(), "\n") >= 2
	})
	dec := json.NewDecoder(strings.NewReader(out.String()))
	var alice, light devnetNode
	if err := dec.Decode(&alice); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&light); err != nil {
		t.Fatal(err)
	}
	if alice.Role != "storage" || light.Role != "light" || light.Wallet == "" || light.Provider == "" {
		t.Fatalf("devnet nodes %+v %+v", alice, light)
	}
	var st api.Status
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("the light client's last status: %s", last)
		}
	}()
	testwait.For(t, "the light client's paid subscription and its wallet in its status", 60*time.Second, func() bool {
		_, sout, _ := runCLI(t, nil, "status", "--data-dir", light.DataDir, "--json")
		st = api.Status{}
		last = sout
		return json.Unmarshal([]byte(sout), &st) == nil && len(st.Storage) == 1 && st.Storage[0].State == "active" &&
			st.Storage[0].Expires != "" && st.Wallet.Balance != ""
	})
	exp, err := time.Parse(time.RFC3339, st.Storage[0].Expires)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Fatalf("paid until %s: %v from now, want 30 days", exp, d)
	}
	if st.Wallet.Address != light.Wallet || st.Wallet.Balance == "1000 IOTA" {
		t.Fatalf("the light client's wallet %+v: it did not pay", st.Wallet)
	}
}

func TestDevnetJSON(t *testing.T) {
	out := &testwait.Buffer{}
	stopc := make(chan struct{})
	env := &cmdEnv{stdout: out, stderr: io.Discard, getenv: func(string) string { return "" }, stop: stopc}
	done := make(chan int, 1)
	dir := t.TempDir()
	go func() { done <- run(env, []string{"devnet", "--nodes", "3", "--json", "--dir", dir}) }()
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(out.String(), "\n") < 3 {
		select {
		case code := <-done:
			t.Fatalf("devnet exited with %d: %s", code, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("devnet did not print 3 nodes: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	dec := json.NewDecoder(strings.NewReader(out.String()))
	seen := map[string]bool{}
	nodes := map[string]devnetNode{}
	for i, name := range []string{"alice", "bob", "carol"} {
		var n devnetNode
		if err := dec.Decode(&n); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if n.Name != name || !strings.HasSuffix(n.Address, "@tangle") || n.Password == "" || seen[n.SMTP] {
			t.Fatalf("node %d: %+v", i, n)
		}
		seen[n.SMTP] = true
		nodes[name] = n
		for _, hp := range []string{n.IMAP, n.SMTP, n.Web} {
			if !strings.HasPrefix(hp, "127.0.0.1:") {
				t.Fatalf("%s listens on %s, not loopback", name, hp)
			}
		}
		// Each node's own status says it is peered with the two others.
		code, sout, errs := runCLI(t, nil, "status", "--data-dir", n.DataDir, "--json")
		if code != 0 {
			t.Fatalf("status of %s: %s", name, errs)
		}
		var st api.Status
		if err := json.Unmarshal([]byte(sout), &st); err != nil || len(st.P2P.Peers) != 2 {
			t.Fatalf("%s has %d peers (%v)", name, len(st.P2P.Peers), err)
		}
		// ... and shows its funded wallet's balance on the dev chain.
		testwait.For(t, name+"'s wallet balance in its status", 60*time.Second, func() bool {
			_, sout, _ := runCLI(t, nil, "status", "--data-dir", n.DataDir, "--json")
			st = api.Status{}
			return json.Unmarshal([]byte(sout), &st) == nil && st.Wallet.Balance != ""
		})
		if w := st.Wallet; w.Address != n.Wallet || w.Balance != "1000 IOTA" || w.ChainID != 1337 || w.Error != "" {
			t.Fatalf("%s's status wallet %+v, want %s with 1000 IOTA", name, w, n.Wallet)
		}
		if _, txt, _ := runCLI(t, nil, "status", "--data-dir", n.DataDir); !strings.Contains(txt, "Wallet    "+n.Wallet+": 1000 IOTA") {
			t.Fatalf("%s's status has no wallet line:\n%s", name, txt)
		}
	}
	// Each node has a funded wallet on the devnet's dev chain.
	if al := nodes["alice"]; al.Wallet == "" || !strings.HasPrefix(al.RPC, "http://127.0.0.1:") {
		t.Fatalf("no dev chain: %+v", al)
	} else if code, wout, errs := runCLI(t, nil, "wallet", "--data-dir", al.DataDir, "--rpc", al.RPC, "--chain-id", "1337", "--insecure-unencrypted-wallet", "--json"); code != 0 ||
		!strings.Contains(wout, `"balance":"1000 IOTA"`) || !strings.Contains(wout, al.Wallet) {
		t.Fatalf("alice's wallet: %d %s %s", code, wout, errs)
	}
	// Alice sells storage on the dev chain; bob buys a subscription from her.
	if al, bo := nodes["alice"], nodes["bob"]; al.Storage == "" {
		t.Fatalf("alice is no storage provider: %+v", al)
	} else if code, sout, errs := runCLI(t, nil, "storage", "subscribe", "--data-dir", bo.DataDir, "--provider", al.Storage, "--network", "tanglemail-dev",
		"--rpc", bo.RPC, "--chain-id", "1337", "--insecure-unencrypted-wallet", "--mib", "16", "--days", "7", "--yes"); code != 0 || !strings.Contains(sout, "active until") {
		t.Fatalf("bob subscribes at alice: %d %s %s", code, sout, errs)
	}
	// Each node knows the others by their names.
	for name, n := range nodes {
		code, cout, errs := runCLI(t, nil, "contacts", "--data-dir", n.DataDir, "--json")
		if code != 0 {
			t.Fatalf("contacts of %s: %s", name, errs)
		}
		var cs api.Contacts
		if err := json.Unmarshal([]byte(cout), &cs); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for other, o := range nodes {
			if other != name {
				want[other] = o.Address
			}
		}
		got := map[string]string{}
		for _, c := range cs.Contacts {
			got[c.Petname] = c.Address
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%s's contacts %v, want %v", name, got, want)
		}
	}
	// So "tanglemail chat bob" works at once, and carol's chat with alice gets the message.
	a := startChat(t, nil, "--data-dir", nodes["alice"].DataDir, "carol")
	a.waitOut(t, "Chat with carol <"+nodes["carol"].Address+">.")
	c := startChat(t, nil, "--data-dir", nodes["carol"].DataDir, "alice")
	c.waitOut(t, "Chat with alice <"+nodes["alice"].Address+">.")
	a.typeLine(t, "hi carol, from the devnet")
	waitOutFor(t, c, "alice: hi carol, from the devnet", 30*time.Second)
	close(stopc)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("devnet exited with %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("devnet did not stop")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "512KiB": 512 << 10, "64MiB": 64 << 20, "4GiB": 4 << 30,
		"1TiB": 1 << 40, "100B": 100, " 2 GiB ": 2 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "4GB", "1.5GiB", "9999999TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
