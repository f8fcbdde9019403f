// Package testwait is test support: waiting, with a deadline, for a condition that another goroutine,
// process or node brings about, and the two things tests wait on most: output written by other
// goroutines (Buffer, buffer.go) and a server started on a loopback port it must be told (FreePort).
// Tests wait on events, never on bare sleeps, and give generous deadlines (a loaded 2-core machine
// running the race detector is many times slower than an idle one). Only tests and test-support
// packages import it; it imports nothing of tanglemail, so that every package's own tests can use it.
package testwait

import (
	"testing"
	"time"
)

// poll is how often For checks its condition.
const poll = 5 * time.Millisecond

// For polls cond until it holds, failing t (Fatalf, naming what) after d.
func For(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(poll)
	}
}
