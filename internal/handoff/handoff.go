// Package handoff owns the one net.Listener whose connections are handed to it rather than accepted
// from a socket: the IMAP front door's dispatcher hands each connection to the go-imap server that
// matches its authentication policy, and the front doors' fuzz tests hand net.Pipe ends to a server.
//
// Push blocks until Accept takes the connection or the listener is closed; Close makes every pending
// and later Accept return net.ErrClosed and every pending and later Push return false.
package handoff

import (
	"net"
	"sync"
)

// Listener is a net.Listener fed by Push. Safe for concurrent use.
type Listener struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

// New returns an open Listener.
func New() *Listener {
	return &Listener{ch: make(chan net.Conn), done: make(chan struct{})}
}

// Push hands c to the next Accept. It reports false, leaving c to the caller, once the listener is
// closed.
func (l *Listener) Push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// Accept returns the next pushed connection, or net.ErrClosed once the listener is closed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops the listener; it is safe to call more than once.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr is a placeholder: the connections come from no socket of the listener's.
func (l *Listener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
