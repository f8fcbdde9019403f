package node

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestFrontActivity: the front doors' listener wrapper marks activity on accept and on each read, and
// keeps the TCP descriptor reachable for the submission server's TCP_QUICKACK.
func TestFrontActivity(t *testing.T) {
	a := &frontActivity{base: time.Now().Add(-time.Hour)}
	if a.busy() {
		t.Fatal("busy before any activity")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := a.listener(ln)
	defer l.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("EHLO x\r\n"))
		time.Sleep(time.Second) // keep the connection open while the server reads (not a synchronisation)
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !a.busy() {
		t.Fatal("not busy after accept")
	}
	if _, ok := c.(syscall.Conn); !ok {
		t.Fatalf("accepted %T does not expose its descriptor", c)
	}
	a.last.Store(1) // an hour ago
	if a.busy() {
		t.Fatal("busy long after the last activity")
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); n == 0 {
		t.Fatalf("read: %v", err)
	}
	if !a.busy() {
		t.Fatal("not busy after a read")
	}
}
