package storage

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/tanglemail/tanglemail/internal/crashtest"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/storage/wire"
	"github.com/tanglemail/tanglemail/internal/tangle"
)

const crashChildEnv = "TANGLEMAIL_STORAGE_CRASH_CHILD"

// TestCrashChild is the provider process of TestCrash (it runs only when re-executed by it): it serves
// the storage protocol on loopback and offers blocks without pause, printing "ACK <id>" for every block
// of the subscription's prefix once Offer has returned (committed).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process of TestCrash")
	}
	params := benchParams()
	p, err := Open(Config{Dir: dir, Params: params})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	h, err := p2p.NewClientHost(context.Background(), p2p.WithClientListen("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	h.HandleStream(p.Protocol(), p.Serve)
	fmt.Println("ADDR", h.Addrs()[0])
	ctx := context.Background()
	for {
		var batch []*tangle.Block
		var mine []string
		for range 1 + mrand.IntN(4) {
			tag := tagNot(bobPrefix)
			if mrand.IntN(3) > 0 {
				tag = tagWith(bobPrefix)
			}
			b := mkBlock(t, params, tag, 200+mrand.IntN(800), time.Now())
			batch = append(batch, b)
			if bobPrefix.Matches(tag) {
				mine = append(mine, b.ID().String())
			}
		}
		if err := p.Offer(ctx, batch); err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		for _, id := range mine {
			fmt.Println("ACK", id)
		}
	}
}

// TestCrash kills the provider process with SIGKILL five times at random moments while it stores and
// serves; every block it acknowledged (Offer committed) is served afterwards exactly once, with a
// stable cursor, and nothing released with an acknowledged Release comes back.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	params := benchParams()
	// The subscription, created before the first start.
	p, err := Open(Config{Dir: dir, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.Grant(context.Background(), 512, 30)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv := newKey(t)
	id, _, err := p.create(context.Background(), wire.CreateRequest{Prefix: bobPrefix, QuotaMiB: 512, Key: pub, Grant: tok}, "test")
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var mu sync.Mutex
	acked := map[string]bool{}
	fetched := map[string]wire.Cursor{}
	var cursor, released wire.Cursor
	record := func(ps []wire.Pushed) {
		mu.Lock()
		defer mu.Unlock()
		for _, x := range ps {
			bid := hex.EncodeToString(blakeID(x.Block))
			if c, ok := fetched[bid]; ok && c != x.Cursor {
				t.Errorf("block %s served at cursor %d and %d", bid[:8], c, x.Cursor)
			}
			fetched[bid] = x.Cursor
		}
	}
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 9))
	for round := range 5 {
		cmd, out := crashtest.Start(t, []string{crashChildEnv + "=" + dir}, "-test.run=^TestCrashChild$", "-test.count=1")
		addrCh := make(chan string, 1)
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "ADDR "):
					addrCh <- strings.TrimPrefix(line, "ADDR ")
				case strings.HasPrefix(line, "ACK "):
					mu.Lock()
					acked[strings.TrimPrefix(line, "ACK ")] = true
					mu.Unlock()
				case strings.HasPrefix(line, "ERR "):
					t.Errorf("child: %s", line)
				}
			}
			_, _ = io.Copy(io.Discard, out)
		}()
		var addr string
		select {
		case addr = <-addrCh:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatal("child did not start")
		}
		// Serve while storing, and kill at a random moment.
		killAt := time.Duration(200+rng.IntN(1500)) * time.Millisecond
		killed := make(chan struct{})
		time.AfterFunc(killAt, func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			close(killed)
		})
		func() {
			h, err := p2p.NewClientHost(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			pid, err := h.ConnectAddr(ctx, addr)
			if err != nil {
				return // killed before we connected
			}
			sess, err := wire.Dial(ctx, h, pid, params.ID)
			if err != nil {
				return
			}
			defer sess.Close()
			if err := sess.Auth(ctx, id, priv); err != nil {
				return
			}
			for page := 0; ; page++ {
				select {
				case <-killed:
					return
				default:
				}
				got, next, _, err := sess.Fetch(ctx, cursor, 1+rng.IntN(50), 1+rng.IntN(64<<10))
				if err != nil {
					return
				}
				record(got)
				cursor = next
				if page%3 == 2 {
					if err := sess.Release(ctx, cursor); err != nil {
						return
					}
					released = cursor
				}
			}
		}()
		<-killed
		_ = cmd.Wait()
		<-readDone
		t.Logf("round %d: killed after %v; %d acknowledged, %d fetched, cursor %d", round, killAt, len(acked), len(fetched), cursor)
	}

	// After the last kill: every acknowledged block is served (or was), nothing released comes back.
	srv := startServer(t, Config{Dir: dir, Params: params})
	c := dial(t, srv)
	if err := c.s.Auth(ctx, id, priv); err != nil {
		t.Fatal(err)
	}
	all, _ := fetchAll(t, c.s, 0, 512, 4<<20)
	for _, x := range all {
		if x.Cursor <= released {
			t.Fatalf("block at cursor %d came back after release up to %d", x.Cursor, released)
		}
	}
	rest, _ := fetchAll(t, c.s, cursor, 512, 4<<20)
	record(rest)
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("the child acknowledged nothing")
	}
	lost := 0
	for bid := range acked {
		if _, ok := fetched[bid]; !ok {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged blocks lost", lost, len(acked))
	}
	t.Logf("%d acknowledged blocks, all served; %d served in all", len(acked), len(fetched))
}

func blakeID(raw []byte) []byte {
	s := blake2b.Sum256(raw)
	return s[:]
}
