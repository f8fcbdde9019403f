package imapserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/handoff"
	"github.com/tanglemail/tanglemail/internal/loginpenalty/penaltytest"
	"github.com/tanglemail/tanglemail/internal/store"
)

// FuzzServer feeds arbitrary client bytes to a connection in each state (not authenticated,
// authenticated, INBOX selected) and checks that the server neither panics (go-imap recovers panics
// per connection; the server counts them) nor hangs: it keeps reading while the client writes, and
// the connection ends promptly once the client goes away. The seed corpus is under
// testdata/fuzz/FuzzServer: real command sequences for every state.
func FuzzServer(f *testing.F) {
	fs := fuzzState{dir: f.TempDir()}
	f.Cleanup(fs.close)
	states := []string{
		"",
		"l LOGIN " + testUser + ` "` + testPass + `"` + "\r\n",
		"l LOGIN " + testUser + ` "` + testPass + `"` + "\r\ns SELECT INBOX\r\n",
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fs.ready(t)
		for _, prefix := range states {
			fuzzConn(t, fs.ln, prefix, data)
		}
		if n := fs.srv.panics.Load(); n != 0 {
			t.Fatalf("server recovered %d panics", n)
		}
	})
}

// fuzzState is the store and server the inputs run against. Inputs change it (APPEND, COPY of a
// mailbox into itself, CREATE); it starts over when it has grown, so that inputs stay fast.
type fuzzState struct {
	dir string
	n   int
	st  *store.Store
	srv *Server
	ln  *handoff.Listener
}

func (fs *fuzzState) ready(t *testing.T) {
	if fs.st != nil {
		ms, err := fs.st.Mailboxes(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, m := range ms {
			total += int(m.Messages)
		}
		if len(ms) <= 20 && total <= 40 {
			return
		}
		fs.close()
	}
	fs.n++
	st, err := store.Open(filepath.Join(fs.dir, fmt.Sprintf("mail%d.db", fs.n)), store.WithUIDValidity(testUIDValidity()))
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range [][]byte{plainMsg("hello", "body text\r\n"), multipartMsg, []byte("Subject: x")} {
		deliver(t, st, "INBOX", raw)
	}
	fs.st = st
	fs.srv = New(st, Options{Password: testPass, Logger: slog.New(slog.DiscardHandler), MaxAppendSize: 1 << 20, Penalty: penaltytest.Instant()})
	fs.ln = handoff.New()
	go fs.srv.Serve(fs.ln)
}

func (fs *fuzzState) close() {
	if fs.st == nil {
		return
	}
	fs.srv.Close()
	fs.st.Close()
	os.Remove(fs.st.Path())
	os.Remove(fs.st.Path() + "-wal")
	os.Remove(fs.st.Path() + "-shm")
	fs.st = nil
}

// fuzzConn runs one connection: prefix, data, LOGOUT, then the client hangs up.
func fuzzConn(t *testing.T, ln *handoff.Listener, prefix string, data []byte) {
	client, server := net.Pipe()
	closed := make(chan struct{})
	if !ln.Push(&notifyConn{Conn: server, closed: closed}) {
		t.Fatal("server closed")
	}
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, client); close(drained) }()

	deadline := time.Now().Add(10 * time.Second)
	client.SetWriteDeadline(deadline)
	for _, b := range [][]byte{[]byte(prefix), data, []byte("\r\nz LOGOUT\r\n")} {
		if _, err := client.Write(b); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("server stopped reading: %v", err)
			}
			break // the server closed the connection (BYE, LOGOUT): fine
		}
	}
	client.Close()
	select {
	case <-closed:
	case <-time.After(time.Until(deadline)):
		t.Fatal("connection still open 10 s after the client left")
	}
	<-drained
}

// notifyConn reports when the server closes its end.
type notifyConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}
