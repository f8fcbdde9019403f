package handoff

import (
	"errors"
	"net"
	"testing"
)

func TestPushAcceptClose(t *testing.T) {
	l := New()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	pushed := make(chan bool, 1)
	go func() { pushed <- l.Push(c1) }()
	got, err := l.Accept()
	if err != nil || got != c1 {
		t.Fatalf("Accept = %v, %v; want the pushed connection", got, err)
	}
	if !<-pushed {
		t.Error("Push of an accepted connection reported false")
	}
	if l.Addr().Network() != "pipe" {
		t.Errorf("Addr().Network() = %q, want pipe", l.Addr().Network())
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if l.Push(c2) {
		t.Error("Push after Close reported true")
	}
}
