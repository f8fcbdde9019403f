package web

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
)

// Wrong passwords, by POST /api/login, Bearer and Basic, make the next attempts from the same source
// wait longer and longer; the right password still gets in, after the wait.
func TestLoginPenalty(t *testing.T) {
	clk := penaltytest.NewClock()
	e := newEnv(t, func(c *envConfig) { c.tune = func(s *Server) { s.penalty = clk.Penalty() } })
	basic := func(pass string) reqOpt {
		return func(r *http.Request) { r.SetBasicAuth("anyone", pass) }
	}
	e.call("POST", "/api/login", api.Login{Password: "nope1"}, noAuth).mustCode(t, 401)
	e.call("GET", "/api/me", nil, withHeader("Authorization", "Bearer nope2")).mustCode(t, 401)
	e.call("GET", "/api/me", nil, noAuth, basic("nope3")).mustCode(t, 401)
	e.call("POST", "/api/login", api.Login{Password: "nope4"}, noAuth).mustCode(t, 401)
	e.call("GET", "/api/me", nil, withHeader("Authorization", "Bearer nope5")).mustCode(t, 401)
	if got := clk.Sleeps(); !slices.Equal(got, penaltytest.Growing) {
		t.Fatalf("waits %v, want %v", got, penaltytest.Growing)
	}
	// The owner: the right password waits, then works; the penalty is then cleared.
	e.call("GET", "/api/me", nil, withHeader("Authorization", "Bearer "+testPassword)).mustCode(t, 200)
	if got := clk.Sleeps(); len(got) != 5 || got[4] != 15*time.Second {
		t.Fatalf("right password's wait: %v", got)
	}
	e.call("POST", "/api/login", api.Login{Password: testPassword}, noAuth).mustCode(t, 204)
	if got := clk.Sleeps(); len(got) != 5 {
		t.Fatalf("waited after a success: %v", got)
	}
}
