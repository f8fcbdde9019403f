package imapserver

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
)

func TestLoginPenalty(t *testing.T) {
	clk := penaltytest.NewClock()
	ts := newTestServer(t, func(o *Options) { o.Penalty = clk.Penalty() })
	for i := range 4 {
		c := ts.dial(t, nil)
		if err := c.Login(testUser, fmt.Sprintf("wrong%d", i)).Wait(); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Fatalf("wrong login %d: %v", i, err)
		}
	}
	// A wrong user name with the right password is a failure too, and waits.
	c := ts.dial(t, nil)
	if err := c.Authenticate(sasl.NewPlainClient("", "someone-else", testPass)); err == nil {
		t.Fatal("a wrong user name logged in")
	}
	if got := clk.Sleeps(); !slices.Equal(got, penaltytest.Growing) {
		t.Fatalf("penalty waits %v, want %v", got, penaltytest.Growing)
	}
	// The owner, on the same loopback source: the right password waits, then succeeds.
	c = ts.dial(t, nil)
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("right password after failures: %v", err)
	}
	if got := clk.Sleeps(); len(got) != 5 || got[4] != 15*time.Second {
		t.Fatalf("right password's wait: %v", got)
	}
	// A success clears the penalty.
	c = ts.dial(t, nil)
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatal(err)
	}
	if got := clk.Sleeps(); len(got) != 5 {
		t.Fatalf("waited after a success: %v", got)
	}
}
