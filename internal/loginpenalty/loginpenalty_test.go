package loginpenalty_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/loginpenalty"
	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
)

func newTest() (*loginpenalty.Penalty, *penaltytest.Clock) {
	clk := penaltytest.NewClock()
	return clk.Penalty(), clk
}

func TestDelayGrowsAndRightPasswordStillWorks(t *testing.T) {
	p, clk := newTest()
	ctx := context.Background()
	secret := loginpenalty.NewSecret("right")
	want := []time.Duration{0, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}
	for i, w := range want {
		if d := p.Delay(loginpenalty.Local); d != w {
			t.Fatalf("before failure %d: delay %v, want %v", i+1, d, w)
		}
		pass := fmt.Sprintf("wrong%d", i)
		ok, err := p.Attempt(ctx, "test", loginpenalty.Local, pass, secret.Matches(pass))
		if ok || err != nil {
			t.Fatalf("wrong password: %v %v", ok, err)
		}
	}
	if got := clk.Sleeps(); len(got) != 5 || got[0] != 2*time.Second || got[4] != 15*time.Second {
		t.Fatalf("sleeps %v", got)
	}
	// The owner's right password: delayed, then accepted; the penalty is cleared.
	ok, err := p.Attempt(ctx, "test", loginpenalty.Local, "right", secret.Matches("right"))
	if !ok || err != nil {
		t.Fatalf("right password refused: %v %v", ok, err)
	}
	if last := clk.Sleeps()[len(clk.Sleeps())-1]; last != 15*time.Second {
		t.Fatalf("right password waited %v, want 15s", last)
	}
	if d := p.Delay(loginpenalty.Local); d != 0 {
		t.Fatalf("delay after success %v", d)
	}
}

func TestDecay(t *testing.T) {
	p, clk := newTest()
	for i := range 20 {
		p.Attempt(context.Background(), "test", loginpenalty.Local, fmt.Sprint(i), false)
	}
	if d := p.Delay(loginpenalty.Local); d != loginpenalty.DefaultMax {
		t.Fatalf("delay %v", d)
	}
	clk.Advance(2 * loginpenalty.DefaultHalfLife) // 8 → 2 failures
	if d := p.Delay(loginpenalty.Local); d != 4*time.Second {
		t.Fatalf("after two half-lives: %v, want 4s", d)
	}
	clk.Advance(2 * loginpenalty.DefaultHalfLife)
	if d := p.Delay(loginpenalty.Local); d != 0 {
		t.Fatalf("after four half-lives: %v, want 0", d)
	}
}

func TestSameWrongPasswordDoesNotEscalate(t *testing.T) {
	p, _ := newTest()
	for range 5 {
		p.Attempt(context.Background(), "test", loginpenalty.Local, "old saved password", false)
	}
	if d := p.Delay(loginpenalty.Local); d != loginpenalty.DefaultInitial {
		t.Fatalf("delay %v, want %v", d, loginpenalty.DefaultInitial)
	}
}

func TestSourcesAreSeparate(t *testing.T) {
	p, _ := newTest()
	a := loginpenalty.SourceOf(&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1})
	b := loginpenalty.SourceOf(&net.TCPAddr{IP: net.ParseIP("192.0.2.2"), Port: 1})
	p.Attempt(context.Background(), "test", a, "x", false)
	if p.Delay(a) == 0 || p.Delay(b) != 0 || p.Delay(loginpenalty.Local) != 0 {
		t.Fatalf("delays a=%v b=%v local=%v", p.Delay(a), p.Delay(b), p.Delay(loginpenalty.Local))
	}
}

func TestCanceledWaitRecordsNothing(t *testing.T) {
	p, _ := newTest()
	p.Attempt(context.Background(), "test", loginpenalty.Local, "x", false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Attempt(ctx, "test", loginpenalty.Local, "y", false); err == nil {
		t.Fatal("no error after the client went")
	}
	if d := p.Delay(loginpenalty.Local); d != loginpenalty.DefaultInitial {
		t.Fatalf("delay %v: the abandoned attempt counted", d)
	}
}

func TestRealSleepEndsWithContext(t *testing.T) {
	p := loginpenalty.New(loginpenalty.Options{Initial: time.Hour})
	p.Attempt(context.Background(), "test", loginpenalty.Local, "x", false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := p.Attempt(ctx, "test", loginpenalty.Local, "y", true); err == nil {
		t.Fatal("a one-hour wait returned without error")
	}
}

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want loginpenalty.Source
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, loginpenalty.Local},
		{&net.TCPAddr{IP: net.ParseIP("127.3.4.5")}, loginpenalty.Local},
		{&net.TCPAddr{IP: net.ParseIP("::1")}, loginpenalty.Local},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, loginpenalty.Local},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7")}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7")}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6")}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::1")}, "2001:db8:1:2::/64"},
	} {
		if got := loginpenalty.SourceOf(tc.addr); got != tc.want {
			t.Errorf("loginpenalty.SourceOf(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got := loginpenalty.SourceOfHostPort("[2001:db8::1]:443"); got != "2001:db8::/64" {
		t.Errorf("host:port: %q", got)
	}
	if got := loginpenalty.SourceOfHostPort("127.0.0.1:5"); got != loginpenalty.Local {
		t.Errorf("loopback host:port: %q", got)
	}
}

func TestTableIsBounded(t *testing.T) {
	clk := penaltytest.NewClock()
	p := loginpenalty.New(loginpenalty.Options{Now: clk.Now, Sleep: clk.Sleep, MaxSources: 10})
	for i := range 100 {
		clk.Advance(time.Second)
		p.Attempt(context.Background(), "test", loginpenalty.Source(fmt.Sprint(i)), "x", false)
	}
	if n := loginpenalty.Sources(p); n > 10 {
		t.Fatalf("%d sources kept, bound 10", n)
	}
	if p.Delay("99") == 0 {
		t.Fatal("the latest source was evicted")
	}
}

func TestSecret(t *testing.T) {
	s := loginpenalty.NewSecret("pw")
	if !s.Matches("pw") || s.Matches("pw2") || s.Matches("") {
		t.Fatal("Matches")
	}
	if loginpenalty.NewSecret("").Matches("") {
		t.Fatal("the empty password matched")
	}
}
