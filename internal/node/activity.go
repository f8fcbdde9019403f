package node

import (
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// activityWindow is how long after a front door last heard from a client the proof of work keeps
// giving way (outbox.Config.Yield, tangle.WithYield): long enough to cover the gaps between the
// commands of a session and between a client's connections, short enough that an idle mail client
// does not slow the grind.
const activityWindow = time.Second

// frontActivity records when the SMTP and IMAP front doors last accepted a connection or read from a
// client (issue 16, finding 2: grinding starved acceptance). The outbox's grinders ask busy once per
// batch of hashes, so both sides are one atomic operation; times are monotonic (time.Since of a fixed
// base), so a wall-clock step changes nothing.
type frontActivity struct {
	base time.Time
	last atomic.Int64 // nanoseconds since base of the last activity; 0: none yet
}

func newFrontActivity() *frontActivity {
	return &frontActivity{base: time.Now()}
}

// mark records activity now.
func (a *frontActivity) mark() {
	a.last.Store(int64(time.Since(a.base)) + 1)
}

// busy reports whether a front door served a client within activityWindow.
func (a *frontActivity) busy() bool {
	last := a.last.Load()
	return last != 0 && int64(time.Since(a.base))+1-last < int64(activityWindow)
}

// listener marks activity on every accepted connection and every read from one.
func (a *frontActivity) listener(l net.Listener) net.Listener {
	return activityListener{Listener: l, a: a}
}

type activityListener struct {
	net.Listener
	a *frontActivity
}

func (l activityListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	l.a.mark()
	if sc, ok := c.(syscall.Conn); ok {
		return &activitySysConn{activityConn{Conn: c, a: l.a}, sc}, nil
	}
	return &activityConn{Conn: c, a: l.a}, nil
}

type activityConn struct {
	net.Conn
	a *frontActivity
}

func (c *activityConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.a.mark()
	}
	return n, err
}

// activitySysConn keeps the descriptor reachable (syscall.Conn) for the submission server's
// TCP_QUICKACK (internal/submission/quickack.go).
type activitySysConn struct {
	activityConn
	sc syscall.Conn
}

func (c *activitySysConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }
