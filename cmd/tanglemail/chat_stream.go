package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// The event stream of a chat session: one goroutine keeps GET /api/events open, reconnects with
// exponential backoff (or the stream's retry), and reports events, connections and failures to the
// session loop, which alone acts on them.

// streamItem is what the stream goroutine reports: an event, a connection, or a failure.
type streamItem struct {
	ev    *sseEvent
	up    bool          // connected
	again bool          // connected after a loss: events may have been missed
	err   error         // the connection failed or broke
	retry time.Duration // when the next attempt is made
	fatal bool          // no further attempt
}

// stream keeps the event stream open until ctx ends, reporting to items.
func (s *chatSession) stream(ctx context.Context, items chan<- streamItem) {
	send := func(it streamItem) bool {
		select {
		case items <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var (
		lastID      string
		serverRetry time.Duration
		failures    int
		everUp      bool
	)
	for {
		began := time.Now()
		connCtx, cancelConn := context.WithCancel(ctx)
		body, err := s.client.openEvents(connCtx, lastID)
		if err == nil {
			if !send(streamItem{up: true, again: everUp}) {
				body.Close()
				cancelConn()
				return
			}
			everUp = true
			err = readEvents(connCtx, cancelConn, body, &lastID, &serverRetry, send)
			body.Close()
			if time.Since(began) >= 10*time.Second {
				failures = 0
			}
		}
		cancelConn()
		if ctx.Err() != nil {
			return
		}
		st := apiStatus(err)
		fatal := st >= 400 && st < 500
		delay := chatBackoffFirst
		if serverRetry > 0 {
			delay = serverRetry
		}
		for i := 0; i < failures && delay < chatBackoffMax; i++ {
			delay *= 2
		}
		delay = min(delay, chatBackoffMax)
		if !send(streamItem{err: err, retry: delay, fatal: fatal}) || fatal {
			return
		}
		failures++
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// readEvents reads one connection's events until it breaks. A read that gets nothing for
// chatIdleTimeout (the node sends keep-alives) cancels the connection.
func readEvents(ctx context.Context, cancel context.CancelFunc, body io.Reader, lastID *string, retry *time.Duration, send func(streamItem) bool) error {
	var idle atomic.Bool
	watchdog := time.AfterFunc(time.Hour, func() {
		idle.Store(true)
		cancel()
	})
	defer watchdog.Stop()
	r := newSSEReader(readerFunc(func(p []byte) (int, error) {
		watchdog.Reset(chatIdleTimeout)
		n, err := body.Read(p)
		watchdog.Stop()
		return n, err
	}))
	for {
		ev, err := r.Next()
		*lastID = r.LastEventID()
		if r.Retry() > 0 {
			*retry = r.Retry()
		}
		switch {
		case idle.Load():
			return fmt.Errorf("the node sent nothing for %s, not even a keep-alive", chatIdleTimeout)
		case errors.Is(err, io.EOF):
			return errors.New("the node closed the event stream")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("the connection broke")
		case err != nil:
			return fmt.Errorf("reading the event stream: %w", err)
		}
		if !send(streamItem{ev: &ev}) {
			return ctx.Err()
		}
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
