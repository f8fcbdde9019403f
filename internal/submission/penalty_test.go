package submission

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
)

// The user name must be the user's address: any other is refused even with the right password
// (issue 12: "SMTP AUTH accepts any user name with the right password").
func TestAuthUserName(t *testing.T) {
	_, addr := startServer(t, &memBackend{}, testOptions(t))
	for _, user := range []string{"anyone", "", addr0, "tm1other@tangle", own + "x"} {
		c := client(t, addr)
		wantCode(t, c.Auth(sasl.NewPlainClient("", user, password)), 535, "5.7.8", "")
		c = client(t, addr)
		wantCode(t, c.Auth(sasl.NewLoginClient(user, password)), 535, "5.7.8", "")
	}
	// Case does not matter (bech32m and domain names are case-insensitive).
	for _, user := range []string{own, addr0 + "@TANGLE", strings.ToUpper(own)} {
		c := client(t, addr)
		if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
			t.Errorf("user %q: %v", user, err)
		}
	}
}

func TestAuthPenalty(t *testing.T) {
	clk := penaltytest.NewClock()
	opts := testOptions(t)
	opts.Penalty = clk.Penalty()
	_, addr := startServer(t, &memBackend{}, opts)
	for _, pass := range []string{"a", "b", "c", "d", "e"} {
		c := client(t, addr)
		wantCode(t, c.Auth(sasl.NewPlainClient("", own, pass)), 535, "5.7.8", "")
	}
	if got := clk.Sleeps(); !slices.Equal(got, penaltytest.Growing) {
		t.Fatalf("waits %v, want %v", got, penaltytest.Growing)
	}
	// The owner, on the same loopback source: waits, then gets in.
	c := client(t, addr)
	if err := c.Auth(sasl.NewLoginClient(own, password)); err != nil {
		t.Fatalf("right password after failures: %v", err)
	}
	if got := clk.Sleeps(); len(got) != 5 || got[4] != 15*time.Second {
		t.Fatalf("right password's wait: %v", got)
	}
	if _, err := send(t, c, own, []string{rcpt1}, testMessage("after penalty")); err != nil {
		t.Fatal(err)
	}
}
