package submission

import (
	"net"
	"testing"
)

// countingRaw is a rawConn that counts the quick acknowledgements asked for.
type countingRaw struct{ n int }

func (c *countingRaw) Control(func(fd uintptr)) error { c.n++; return nil }

// TestQuickAckListener guards the STARTTLS stall fix (quickack.go, docs/benchmarks.md): the
// submission listener hands out connections that ask for an immediate acknowledgement before every
// read, so a Nagle client's EHLO after the TLS handshake is not held back by a delayed ACK.
func TestQuickAckListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := ackListener{ln}
	defer l.Close()
	client := make(chan net.Conn, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			client <- nil
			return
		}
		c.Write([]byte("EHLO a\r\nEHLO b\r\n"))
		client <- c
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cc := <-client; cc != nil {
		defer cc.Close()
	}
	ac, ok := c.(*ackConn)
	if !ok {
		t.Fatalf("accepted %T, want *ackConn: a TCP connection must get quick acknowledgements", c)
	}
	// The real descriptor works (no error, the data arrives), then every read asks again.
	buf := make([]byte, 4) // three reads of 4 of the 16 bytes sent: none blocks
	if n, err := ac.Read(buf); err != nil || n == 0 {
		t.Fatalf("read through the quick-ack connection: %d %v", n, err)
	}
	cr := &countingRaw{}
	ac.raw = cr
	for range 2 {
		if _, err := ac.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if cr.n != 2 {
		t.Fatalf("%d quick acknowledgements for 2 reads, want one before each", cr.n)
	}
}

// A connection without a descriptor (a pipe, a test's wrapper) is served as is.
func TestQuickAckListenerNoDescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	l := ackListener{&oneConnListener{c: a}}
	c, err := l.Accept()
	if err != nil || c != a {
		t.Fatalf("accepted %T %v, want the pipe itself", c, err)
	}
}

type oneConnListener struct {
	net.Listener
	c net.Conn
}

func (l *oneConnListener) Accept() (net.Conn, error) { return l.c, nil }
