package gateway

import (
	"net"
	"sync"
	"time"
)

// limits are the MX's per-IP and total connection limits and its per-IP message rate, checked before
// anything costly (DATA, checks, sealing, proof of work) is done for a client.
type limits struct {
	maxConns, perIP, perMinute int
	now                        func() time.Time

	mu    sync.Mutex
	total int
	conns map[string]int
	msgs  map[string]*window
}

type window struct {
	start time.Time
	n     int
}

func newLimits(maxConns, perIP, perMinute int, now func() time.Time) *limits {
	return &limits{maxConns: maxConns, perIP: perIP, perMinute: perMinute, now: now,
		conns: map[string]int{}, msgs: map[string]*window{}}
}

// open counts a new connection from ip; false when a limit is reached.
func (l *limits) open(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxConns || l.conns[ip] >= l.perIP {
		return false
	}
	l.total++
	l.conns[ip]++
	return true
}

func (l *limits) close(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.conns[ip]--; l.conns[ip] <= 0 {
		delete(l.conns, ip)
	}
}

// message counts a message (a MAIL command) from ip in the current minute; false when over the rate.
func (l *limits) message(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.msgs[ip]
	if w == nil || now.Sub(w.start) >= time.Minute {
		if len(l.msgs) > 10000 { // forget old windows; bounded memory under many sources
			for k, v := range l.msgs {
				if now.Sub(v.start) >= time.Minute {
					delete(l.msgs, k)
				}
			}
		}
		w = &window{start: now}
		l.msgs[ip] = w
	}
	if w.n >= l.perMinute {
		return false
	}
	w.n++
	return true
}

func (l *limits) listener(ln net.Listener) net.Listener { return &limitListener{Listener: ln, l: l} }

type limitListener struct {
	net.Listener
	l *limits
}

// Accept answers a connection over the limits with 421 (RFC 5321 §3.8) and closes it, and returns
// the next one.
func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOf(c.RemoteAddr())
		if !ll.l.open(ip) {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("421 4.7.0 Too many connections, try again later\r\n"))
			c.Close()
			continue
		}
		return &limitConn{Conn: c, l: ll.l, ip: ip}, nil
	}
}

type limitConn struct {
	net.Conn
	l    *limits
	ip   string
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() { c.l.close(c.ip) })
	return c.Conn.Close()
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}
