package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/crashtest"
	"github.com/tanglemail/tanglemail/internal/dnstest"
	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/smtptest"
	"github.com/tanglemail/tanglemail/internal/testwait"
)

const crashEnv = "TANGLEMAIL_RELAY_CRASH" // dir,dns address,port: set for the child of TestRelaySIGKILL

// crashGateway opens the gateway in dir with the relay sending to port, DNS from dnsAddr.
func crashGateway(t *testing.T, dir, dnsAddr string, port int) (*Gateway, *Relay) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "dkim.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	key, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	res := (&dnstest.Server{Addr: dnsAddr}).Resolver()
	g, err := New(Config{Identity: seedID(t, 2), Dir: dir, Domains: []string{"gw.test"}, Policy: Policy{Open: true},
		Resolver: res, Queue: func(context.Context, []identity.Address, []byte) (int64, error) { return 1, nil }})
	if err != nil {
		t.Fatal(err)
	}
	r, err := g.NewRelay(RelayConfig{DKIMKey: key, DKIMSelector: "tanglemail", Port: port, MinRetry: 10 * time.Millisecond,
		MaxRetry: 20 * time.Millisecond, Timeout: 5 * time.Second, PerHour: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return g, r
}

// TestRelaySIGKILL: a gateway process acknowledges relay requests (Submit returned) while its
// destination is down, retrying; it is killed with SIGKILL at some point; the gateway reopened on the
// same directory delivers every acknowledged message once the destination is up.
func TestRelaySIGKILL(t *testing.T) {
	if v := os.Getenv(crashEnv); v != "" {
		relayCrashChild(t, v)
		return
	}
	dir := t.TempDir()
	key, rec := dkimKey(t)
	der := x509.MarshalPKCS1PrivateKey(key)
	if err := os.WriteFile(filepath.Join(dir, "dkim.pem"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t, `example.test. MX 10 mx.example.test.`, `mx.example.test. A 127.0.0.1`, `tanglemail._domainkey.gw.test. TXT `+rec)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd, out := crashtest.Start(t, []string{fmt.Sprintf("%s=%s,%s,%d", crashEnv, dir, dns.Addr, down)}, "-test.run=^TestRelaySIGKILL$")
	var kill [1]byte
	rand.Read(kill[:])
	killAt := 5 + int(kill[0])%20
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked[m] = true
			if len(acked) == killAt {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	cmd.Wait()
	if len(acked) < killAt {
		t.Fatalf("the child acknowledged %d requests, want %d", len(acked), killAt)
	}
	mx := smtptest.StartMX(t, 0)
	g, r := crashGateway(t, dir, dns.Addr, mx.Port)
	defer g.Close()
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testwait.For(t, "every acknowledged message delivered", 60*time.Second, func() bool {
		got := map[string]bool{}
		for _, m := range mx.Mails() {
			for k := range acked {
				if strings.Contains(string(m.Data), "marker-"+k+"-end") {
					got[k] = true
				}
			}
		}
		return len(got) == len(acked)
	})
	t.Logf("killed after %d acknowledged requests; all delivered after the restart", len(acked))
}

func relayCrashChild(t *testing.T, v string) {
	parts := strings.Split(v, ",")
	port, _ := strconv.Atoi(parts[2])
	g, r := crashGateway(t, parts[0], parts[1], port)
	alice := seedID(t, 1)
	var nonce [16]byte
	rand.Read(nonce[:])
	c, err := SignClaim(alice, OpClaim, g.claims.gateway, "alice", "gw.test", time.Now(), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Claims().Apply(context.Background(), c, time.Now()); err != nil {
		t.Fatal(err)
	}
	go r.Run(context.Background()) // retries against the closed port while requests come in
	for i := 0; ; i++ {
		msg := "From: <" + alice.Address().Mail() + ">\r\nSubject: " + strconv.Itoa(i) + "\r\n\r\nmarker-" + strconv.Itoa(i) + "-end\r\n"
		raw, _ := mail.EncodeRelay([]string{"bob@example.test"}, []byte(msg))
		if err := r.Submit(context.Background(), alice.Address(), raw); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("acked %d\n", i)
	}
}
