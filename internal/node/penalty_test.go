package node

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
)

// The front doors share one failed-login penalty: wrong IMAP logins make the HTTP API wait too, and
// the owner's right password still gets in.
func TestLoginPenaltySharedByFrontDoors(t *testing.T) {
	clk := penaltytest.NewClock()
	cfg := testConfig(t, t.TempDir())
	cfg.LoginPenalty = clk.Penalty()
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	for _, pass := range []string{"guess1", "guess2"} {
		c, err := imapclient.DialInsecure(n.IMAPAddr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(n.Identity().Address().Mail(), pass).Wait(); err == nil {
			t.Fatal("a wrong IMAP password logged in")
		}
		c.Close()
	}
	req, err := http.NewRequest("GET", "http://"+n.APIAddr()+"/api/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.Password())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("right password over HTTP: %s", res.Status)
	}
	if got, want := clk.Sleeps(), []time.Duration{2 * time.Second, 4 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v (the second IMAP try, then the HTTP request)", got, want)
	}
}
