package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/chat"
	"github.com/tanglemail/tanglemail/internal/store"
)

// The event stream, GET /api/events: server-sent events as the WHATWG HTML standard defines them
// (§9.2, "Server-sent events"): Content-Type text/event-stream, each event an "event:" line with
// its name, one "data:" line of compact JSON (JSON never holds a raw line break) and an empty line;
// comment lines (":") keep idle connections open. Every event is flushed at once.
//
// Sources, all owned by the stream's handler goroutine:
//   - the store's change bus (a Listener subscribed before hello): ChangeAdd outside Chats → mail;
//     any message or mailbox change → folders, sent at most every foldersEvery (250 ms) with the
//     counts read after the changes; an overflowed listener → resync (and fresh folders);
//   - the chat service's events (Chat.Subscribe) → chat, receipt, typing, conversation, resync;
//   - Backend.Progress, polled every progressEvery (100 ms) while the stream is open → progress,
//     sent first on connect and then only when its JSON changes;
//   - a keep-alive comment every keepAlive (15 s) of silence.
//
// The handler returns when its request's context ends (the client went away), when the server closes,
// when a write fails (each write has a deadline, so a client that stops reading cannot hold it), or,
// for a stream opened with the session cookie, when the session has ended (sign-out, expiry).

const eventWriteTimeout = 30 * time.Second

type eventWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	idle  *time.Timer // the keep-alive timer, restarted by every write
	every time.Duration
}

// send writes one event and flushes it.
func (ew *eventWriter) send(name string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return ew.raw(name, b)
}

func (ew *eventWriter) raw(name string, data []byte) error {
	var buf bytes.Buffer
	buf.WriteString("event: ")
	buf.WriteString(name)
	buf.WriteString("\ndata: ")
	buf.Write(data)
	buf.WriteString("\n\n")
	return ew.write(buf.Bytes())
}

func (ew *eventWriter) write(b []byte) error {
	_ = ew.rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
	if _, err := ew.w.Write(b); err != nil {
		return err
	}
	ew.idle.Reset(ew.every)
	return ew.rc.Flush()
}

// handleEvents is GET /api/events.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if s.onStreamEnd != nil {
		defer s.onStreamEnd()
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()

	// A stream opened with the session cookie lasts as long as the session: after a sign-out (or
	// expiry) it ends at the next event or keep-alive, at most keepAlive later.
	var session string
	if r.Header.Get("Authorization") == "" {
		if c, err := r.Cookie(sessionCookie); err == nil {
			session = c.Value
		}
	}

	listener := s.store.Subscribe()
	defer listener.Close()
	var chatEvents <-chan chat.Event
	if s.chat != nil {
		chatEvents = s.chat.Subscribe(ctx)
	}
	chats, err := s.store.MailboxByRole(ctx, store.RoleChats)
	if err != nil {
		s.fail(w, r, "open the event stream", err)
		return
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	keepAlive := time.NewTimer(s.keepAlive)
	defer keepAlive.Stop()
	ew := &eventWriter{w: w, rc: http.NewResponseController(w), idle: keepAlive, every: s.keepAlive}
	// retry: how long a browser waits before it reconnects (WHATWG §9.2.6).
	if ew.write([]byte("retry: 2000\n\n")) != nil || ew.send("hello", api.Me{Address: s.address}) != nil {
		return
	}
	var lastProgress []byte
	sendProgress := func() error {
		p := s.backend.Progress()
		if p == nil {
			return nil
		}
		b, err := json.Marshal(p)
		if err != nil || bytes.Equal(b, lastProgress) {
			return nil
		}
		lastProgress = b
		return ew.raw("progress", b)
	}
	if sendProgress() != nil {
		return
	}

	progress := time.NewTicker(s.progressEvery)
	defer progress.Stop()
	foldersTimer := time.NewTimer(time.Hour)
	foldersTimer.Stop()
	defer foldersTimer.Stop()
	var lastFolders time.Time
	foldersDirty, foldersArmed := false, false

	sendFolders := func() error {
		foldersDirty, foldersArmed = false, false
		lastFolders = time.Now()
		fs, err := s.folders(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("event stream: reading the folders failed", "err", err)
			}
			return nil
		}
		return ew.send("folders", api.Folders{Folders: fs})
	}
	// maybeFolders sends folders now if the last were sent long enough ago, else arms the timer.
	maybeFolders := func() error {
		if !foldersDirty || foldersArmed {
			return nil
		}
		if wait := s.foldersEvery - time.Since(lastFolders); wait > 0 {
			foldersTimer.Reset(wait)
			foldersArmed = true
			return nil
		}
		return sendFolders()
	}

	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-listener.Ready():
			changes, overflow := listener.Take()
			if overflow {
				err = ew.send("resync", api.Resync{})
				foldersDirty = true
			}
			for _, c := range changes {
				if err != nil {
					break
				}
				switch c := c.(type) {
				case store.ChangeAdd:
					foldersDirty = true
					if c.MailboxID != chats.ID {
						err = ew.send("mail", api.MailEvent{Folder: int64(c.MailboxID), UID: c.UID})
					}
				case store.ChangeFlags, store.ChangeExpunge, store.ChangeMailboxAdd, store.ChangeMailboxRename,
					store.ChangeMailboxDelete:
					foldersDirty = true
				}
			}
			if err == nil {
				err = maybeFolders()
			}
		case <-foldersTimer.C:
			foldersArmed = false
			err = sendFolders()
		case ev, ok := <-chatEvents:
			if !ok {
				chatEvents = nil // the service stopped; mail events go on
				continue
			}
			err = s.sendChatEvent(ew, ev)
		case <-progress.C:
			err = sendProgress()
		case <-keepAlive.C:
			err = ew.write([]byte(": keep-alive\n\n"))
		}
		if err != nil {
			return
		}
		if session != "" && !s.sessions.alive(session, s.now()) {
			return
		}
	}
}

// sendChatEvent maps a chat service event to its API event (docs/api.md), "resync" included (the chat
// service lost events for this subscriber); unknown types are dropped.
func (s *Server) sendChatEvent(ew *eventWriter, ev chat.Event) error {
	switch ev.Type {
	case "message":
		if ev.Message == nil {
			return nil
		}
		return ew.send("chat", api.ChatEvent{Conversation: ev.Conversation, Message: ev.Message})
	case "status":
		if ev.Message == nil {
			return nil
		}
		return ew.send("receipt", api.ChatEvent{Conversation: ev.Conversation, Message: ev.Message})
	case "typing":
		if ev.From == nil {
			return nil
		}
		return ew.send("typing", api.ChatEvent{Conversation: ev.Conversation, From: &api.Member{Address: ev.From.Address, Name: ev.From.Name}})
	case "conversation":
		if ev.Info == nil {
			return nil
		}
		return ew.send("conversation", api.ChatEvent{Conversation: ev.Conversation, Info: conversationPtr(ev.Info)})
	case "resync":
		return ew.send("resync", api.Resync{})
	}
	return nil
}
