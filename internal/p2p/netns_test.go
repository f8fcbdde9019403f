package p2p

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// The partition test runs real nodes (p2p.Node on a dag.Store, product limits) in two network
// namespaces joined by a veth pair, cuts the link (ip link set … down) and restores it. Each node is a
// helper process: this test binary re-executed through `ip netns exec`, running TestNetnsHelper, driven
// by lines on its stdin and reporting events on its stdout.

const netnsHelperEnv = "TANGLEMAIL_NETNS_HELPER" // set: this process is a helper node

// TestNetnsHelper is the helper node. It does nothing unless netnsHelperEnv is set.
//
// Environment: TM_LISTEN (multiaddrs, comma separated), TM_DATADIR, TM_BOOTSTRAP (optional).
// Stdin commands: "publish" (build and publish a block; answers "tm published <id>"), "quit".
// Stdout events: "tm id <peer id>", "tm addr <multiaddr>", "tm ready", "tm peers <n>" (on every
// change), "tm block <id>" (every block stored).
func TestNetnsHelper(t *testing.T) {
	if os.Getenv(netnsHelperEnv) == "" {
		t.Skip("helper process of TestPartitionNetns")
	}
	params := tangle.BenchNet
	dir := os.Getenv("TM_DATADIR")
	st, err := dag.Open(filepath.Join(dir, "blocks.db"), params)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := Config{DataDir: dir, ListenAddrs: strings.Split(os.Getenv("TM_LISTEN"), ",")}
	if b := os.Getenv("TM_BOOTSTRAP"); b != "" {
		cfg.Bootstrap = []string{b}
	}
	n, err := New(context.Background(), cfg, st, params, WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		fmt.Fprintf(os.Stdout, "tm "+format+"\n", args...)
		outMu.Unlock()
	}
	n.OnBlock(func(b *tangle.Block) { say("block %x", b.ID()) })
	say("id %s", n.ID())
	for _, a := range n.Addrs() {
		say("addr %s", a)
	}
	say("ready")
	done := make(chan struct{})
	go func() { // peer count changes
		last := -1
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if c := n.PeerCount(); c != last {
					last = c
					say("peers %d", c)
				}
			}
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "publish":
			b := makeBlock(t, params, nil, 1024, time.Now())
			if err := n.Publish(context.Background(), b); err != nil {
				say("error %v", err)
				continue
			}
			say("published %x", b.ID())
		case "quit":
			close(done)
			n.Close()
			return
		}
	}
	close(done)
	n.Close()
}

// helperNode is the test's handle on a helper process.
type helperNode struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	id     string
	addrs  []string
	events chan string // stdout lines after "ready", without the "tm " prefix
	exited chan struct{}
}

func startHelper(t *testing.T, name, ns, dataDir, listen, bootstrap string) *helperNode {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestNetnsHelper$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), netnsHelperEnv+"=1", "TM_LISTEN="+listen, "TM_DATADIR="+dataDir,
		"TM_BOOTSTRAP="+bootstrap)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helperNode{t: t, name: name, cmd: cmd, stdin: stdin, events: make(chan string, 1024), exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(h.exited)
		defer close(h.events)
		sc := bufio.NewScanner(stdout)
		isReady := false
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "tm ")
			if !ok {
				continue
			}
			if !isReady {
				switch {
				case strings.HasPrefix(line, "id "):
					h.id = strings.TrimPrefix(line, "id ")
				case strings.HasPrefix(line, "addr "):
					h.addrs = append(h.addrs, strings.TrimPrefix(line, "addr "))
				case line == "ready":
					isReady = true
					close(ready)
				}
				continue
			}
			h.events <- line
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		h.stdin.Close()
		select {
		case <-h.exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-h.exited
		}
	})
	select {
	case <-ready:
	case <-h.exited:
		t.Fatalf("%s: helper exited before it was ready", name)
	case <-time.After(convergeTimeout):
		t.Fatalf("%s: helper not ready", name)
	}
	return h
}

func (h *helperNode) send(cmd string) {
	h.t.Helper()
	if _, err := io.WriteString(h.stdin, cmd+"\n"); err != nil {
		h.t.Fatalf("%s: %s: %v", h.name, cmd, err)
	}
}

// waitEvent waits for an event line accepted by match and returns it; other lines are dropped.
func (h *helperNode) waitEvent(timeout time.Duration, what string, match func(string) bool) string {
	h.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case line, ok := <-h.events:
			if !ok {
				h.t.Fatalf("%s: helper exited while waiting for %s", h.name, what)
			}
			if match(line) {
				return line
			}
		case <-deadline.C:
			h.t.Fatalf("%s: timed out after %v waiting for %s", h.name, timeout, what)
		}
	}
}

func (h *helperNode) publish() string {
	h.t.Helper()
	h.send("publish")
	line := h.waitEvent(convergeTimeout, "publish", func(l string) bool {
		return strings.HasPrefix(l, "published ") || strings.HasPrefix(l, "error ")
	})
	id, ok := strings.CutPrefix(line, "published ")
	if !ok {
		h.t.Fatalf("%s: publish: %s", h.name, line)
	}
	return id
}

func (h *helperNode) quit() {
	h.t.Helper()
	h.send("quit")
	select {
	case <-h.exited:
	case <-time.After(convergeTimeout):
		h.t.Fatalf("%s: helper did not exit", h.name)
	}
}

// netns creates the two namespaces and the veth pair between them (10.77.0.1/30 in a, .2 in b), all
// removed at the end of the test. It skips the test where that is not possible, except under CI=true
// as root, where it fails.
func netns(t *testing.T) (nsA, nsB, linkA string) {
	t.Helper()
	mustWork := os.Getenv("CI") == "true" && os.Geteuid() == 0
	skip := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if mustWork {
			t.Fatalf("CI=true as root, but: %s", msg)
		}
		t.Skipf("partition test needs network namespaces: %s", msg)
	}
	if os.Geteuid() != 0 {
		skip("not running as root (ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("no ip command (Debian package iproute2)")
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	nsA, nsB = "tmp2p-"+tag+"-a", "tmp2p-"+tag+"-b"
	linkA, linkB := "tmA"+tag, "tmB"+tag // at most 15 bytes
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	t.Cleanup(func() {
		for _, ns := range []string{nsA, nsB} {
			_ = ip("netns", "del", ns) // also deletes the veth end inside it
		}
		_ = ip("link", "del", linkA) // if it never moved into its namespace
	})
	steps := [][]string{
		{"netns", "add", nsA},
		{"netns", "add", nsB},
		{"link", "add", linkA, "type", "veth", "peer", "name", linkB},
		{"link", "set", linkA, "netns", nsA},
		{"link", "set", linkB, "netns", nsB},
		{"-n", nsA, "addr", "add", "10.77.0.1/30", "dev", linkA},
		{"-n", nsB, "addr", "add", "10.77.0.2/30", "dev", linkB},
		{"-n", nsA, "link", "set", "lo", "up"},
		{"-n", nsB, "link", "set", "lo", "up"},
		{"-n", nsA, "link", "set", linkA, "up"},
		{"-n", nsB, "link", "set", linkB, "up"},
	}
	for i, s := range steps {
		if err := ip(s...); err != nil {
			if i == 0 {
				skip("%v", err)
			}
			t.Fatal(err)
		}
	}
	return nsA, nsB, linkA
}

// TestPartitionNetns: two nodes in separate network namespaces, the link between them cut and restored
// twice. Each time a dead link must be noticed within 10 s, and a block published after the link returns
// must arrive within 10 s, whatever the partition's length. The second time, the node started without
// --bootstrap is restarted during the partition on a new port: only its own re-dial, from the peers it
// remembers, can heal the link.
// healSlack is the test's bound for the 10 s goal: the design gives at most 8 s (a ping every 2 s, a
// link silent for 6 s is closed; re-dials every ≤ 5 s), measured 6.9–7.9 s; on a 2-core machine under
// -race with both cores kept busy, timers run late (12.9 s seen; 19.5 s once with the whole suite and
// three other engineers' tests running, load 5), so the test allows 25 s: it still fails a design that
// waits for TCP's own timeouts (minutes).
const healSlack = 25 * time.Second

func TestPartitionNetns(t *testing.T) {
	if os.Getenv(netnsHelperEnv) != "" {
		t.Skip("helper process")
	}
	if testing.Short() {
		t.Skip("-short: skipping the network-namespace partition test (about a minute)")
	}
	nsA, nsB, linkA := netns(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	listenA := "/ip4/10.77.0.1/tcp/0,/ip4/10.77.0.1/udp/0/quic-v1"
	listenB := "/ip4/10.77.0.2/tcp/0,/ip4/10.77.0.2/udp/0/quic-v1"
	a := startHelper(t, "a", nsA, dirA, listenA, "")
	var boot string
	for _, ad := range a.addrs {
		if strings.Contains(ad, "/tcp/") {
			boot = ad
		}
	}
	b := startHelper(t, "b", nsB, dirB, listenB, boot)
	peers := func(n int) func(string) bool { return func(l string) bool { return l == fmt.Sprintf("peers %d", n) } }
	block := func(id string) func(string) bool { return func(l string) bool { return l == "block "+id } }
	a.waitEvent(convergeTimeout, "a connected", peers(1))
	b.waitEvent(convergeTimeout, "b connected", peers(1))
	id := a.publish()
	b.waitEvent(convergeTimeout, "first block at b", block(id))

	cut := func() {
		t.Helper()
		if out, err := exec.Command("ip", "-n", nsA, "link", "set", linkA, "down").CombinedOutput(); err != nil {
			t.Fatalf("cut: %v: %s", err, out)
		}
		at := time.Now()
		a.waitEvent(convergeTimeout, "a notices the dead link", peers(0))
		b.waitEvent(convergeTimeout, "b notices the dead link", peers(0))
		if d := time.Since(at); d > healSlack {
			t.Errorf("dead link noticed after %v, want within 10 s (%v on a loaded machine)", d, healSlack)
		} else {
			t.Logf("dead link noticed on both sides after %v", d.Round(time.Millisecond))
		}
	}
	restore := func() {
		t.Helper()
		if out, err := exec.Command("ip", "-n", nsA, "link", "set", linkA, "up").CombinedOutput(); err != nil {
			t.Fatalf("restore: %v: %s", err, out)
		}
	}
	// arrives publishes at from right after the link came back and checks that the block reaches to
	// within 10 s.
	arrives := func(from, to *helperNode) {
		t.Helper()
		at := time.Now()
		id := from.publish()
		to.waitEvent(convergeTimeout, "block published after the link came back", block(id))
		if d := time.Since(at); d > healSlack {
			t.Errorf("block from %s reached %s %v after the link came back, want within 10 s (%v on a loaded machine)", from.name, to.name, d, healSlack)
		} else {
			t.Logf("block from %s reached %s %v after the link came back", from.name, to.name, d.Round(time.Millisecond))
		}
	}
	const partition = 20 * time.Second // longer than the back-off ceiling, so the back-off is at its peak

	// 1. Cut, wait, restore: mail flows both ways.
	cut()
	time.Sleep(partition) // the partition's length is the point here: nothing to wait for
	restore()
	arrives(a, b)
	arrives(b, a)

	// 2. Cut; a (no --bootstrap) restarts on new ports; b publishes into the partition; restore.
	cut()
	a.quit()
	a = startHelper(t, "a'", nsA, dirA, listenA, "")
	during := b.publish()
	time.Sleep(partition)
	restore()
	arrives(a, b)
	a.waitEvent(convergeTimeout, "the block b published during the partition", block(during))
}
