package imapserver

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/tanglemail/tanglemail/internal/loginpenalty"
)

// recordingSleeper is a failed-login penalty's injected clock: a sleep advances it at once and is
// recorded.
type recordingSleeper struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (r *recordingSleeper) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *recordingSleeper) Sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sleeps = append(r.sleeps, d)
	r.now = r.now.Add(d)
	return nil
}

func (r *recordingSleeper) Sleeps() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sleeps)
}

// instantPenalty is the penalty of the tests that are not about it: it counts, but never waits.
func instantPenalty() *loginpenalty.Penalty {
	r := &recordingSleeper{now: time.Unix(1_700_000_000, 0)}
	return loginpenalty.New(loginpenalty.Options{Now: r.Now, Sleep: r.Sleep})
}

func TestLoginPenalty(t *testing.T) {
	clk := &recordingSleeper{now: time.Unix(1_700_000_000, 0)}
	ts := newTestServer(t, func(o *Options) {
		o.Penalty = loginpenalty.New(loginpenalty.Options{Now: clk.Now, Sleep: clk.Sleep})
	})
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
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second}
	if got := clk.Sleeps(); !slices.Equal(got, want) {
		t.Fatalf("penalty waits %v, want %v", got, want)
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
