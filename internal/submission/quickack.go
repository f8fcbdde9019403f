package submission

import (
	"net"
	"syscall"
)

// ackListener hands out connections that acknowledge what the client sent before every read (see
// quickAck): a client that leaves Nagle's algorithm on (RFC 896; most mail clients do) holds a small
// write back until its previous one is acknowledged. After the TLS 1.3 handshake of STARTTLS the client
// writes its Finished and then EHLO; crypto/tls has already sent the server's whole flight, session
// tickets included, so the server has nothing to send with the acknowledgement of Finished, and the
// kernel's delayed ACK (RFC 1122 §4.2.3.2; about 40 ms on Linux) held EHLO back: a stall of about 45 ms
// on every STARTTLS connection. Servers whose TLS sends tickets after the client's Finished (OpenSSL)
// never meet it. Neither disabling session tickets nor TCP_NODELAY on the server removes it;
// acknowledging at once whenever the server waits for the client does (BenchmarkSMTPSessionPhases,
// docs/benchmarks.md).
type ackListener struct{ net.Listener }

func (l ackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	// *net.TCPConn, or a wrapper of one that hands out its descriptor (the node's activity counter).
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			return &ackConn{Conn: c, raw: raw}, nil
		}
	}
	return c, nil
}

// ackConn is a TCP connection that asks the kernel for an immediate acknowledgement before each read.
type ackConn struct {
	net.Conn
	raw rawConn
}

// rawConn is the part of syscall.RawConn that quickAck uses.
type rawConn interface {
	Control(f func(fd uintptr)) error
}

func (c *ackConn) Read(p []byte) (int, error) {
	quickAck(c.raw)
	return c.Conn.Read(p)
}
