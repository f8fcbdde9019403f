package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/chat"
	"github.com/tanglemail/tanglemail/internal/store"
)

func decodeData(t testing.TB, ev sseEvent, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(ev.data), v); err != nil {
		t.Fatalf("%s event data %q: %v", ev.name, ev.data, err)
	}
}

// streamEnds returns an env whose event streams report their end on the returned channel.
func streamEnds(t *testing.T, opts ...func(*envConfig)) (*env, chan struct{}) {
	ended := make(chan struct{}, 10)
	opts = append(opts, func(c *envConfig) {
		prev := c.tune
		c.tune = func(s *Server) {
			if prev != nil {
				prev(s)
			}
			s.onStreamEnd = func() { ended <- struct{}{} }
		}
	})
	return newEnv(t, opts...), ended
}

func waitEnded(t *testing.T, ended chan struct{}) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(eventTimeout):
		t.Fatal("the event stream's handler did not return")
	}
}

func TestEventsHello(t *testing.T) {
	e := newEnv(t)
	c := e.stream()
	var hello map[string]string
	decodeData(t, c.hello, &hello)
	if hello["address"] != e.me {
		t.Fatalf("hello %+v", c.hello)
	}
	if ct := c.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	if cc := c.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("cache control %q", cc)
	}
	token, _ := e.login()
	e.stream(withCookie(token))
	e.call("GET", "/api/events", nil, noAuth).mustCode(t, 401)
	e.call("POST", "/api/events", nil).mustCode(t, 405)
}

func TestEventsMail(t *testing.T) {
	e := newEnv(t)
	inbox, chats := e.folder(store.RoleInbox), e.folder(store.RoleChats)
	c := e.stream()
	e.deliver(chats, simpleMail("a@tangle", "b@tangle", "chat", "hi")) // no mail event for Chats
	uid := e.deliver(inbox, simpleMail("a@tangle", "b@tangle", "one", "1"))

	ev := c.waitFor(t, "mail", nil)
	var m struct {
		Folder int64     `json:"folder"`
		UID    store.UID `json:"uid"`
	}
	decodeData(t, ev, &m)
	if m.Folder != int64(inbox) || m.UID != uid {
		t.Fatalf("first mail event %+v, want INBOX %d", m, uid)
	}
	ev = c.waitFor(t, "folders", func(data string) bool {
		var f struct {
			Folders []api.Folder `json:"folders"`
		}
		json.Unmarshal([]byte(data), &f)
		return len(f.Folders) > 0 && f.Folders[0].Messages == 1 && f.Folders[6].Messages == 1
	})

	// A move is a mail event in the destination; flags change counts.
	archive := e.folder(store.RoleArchive)
	if _, err := e.store.Move(ctxT(t), inbox, store.UIDSetOf(uid), archive); err != nil {
		t.Fatal(err)
	}
	ev = c.waitFor(t, "mail", nil)
	decodeData(t, ev, &m)
	if m.Folder != int64(archive) || m.UID != 1 {
		t.Fatalf("move event %+v", m)
	}
}

func TestEventsFoldersCoalesced(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.tune = func(s *Server) { s.foldersEvery = 2 * time.Second } })
	inbox := e.folder(store.RoleInbox)
	c := e.stream()
	counts := func(ev sseEvent) uint32 {
		var f struct {
			Folders []api.Folder `json:"folders"`
		}
		decodeData(t, ev, &f)
		return f.Folders[0].Messages
	}
	e.deliver(inbox, simpleMail("a@x", "b@x", "one", "1"))
	first := c.waitFor(t, "folders", nil)
	if n := counts(first); n != 1 {
		t.Fatalf("first folders event: %d messages", n)
	}
	// Two more changes right away: one folders event, at least foldersEvery after the first, with both.
	e.deliver(inbox, simpleMail("a@x", "b@x", "two", "2"))
	e.deliver(inbox, simpleMail("a@x", "b@x", "three", "3"))
	second := c.waitFor(t, "folders", nil)
	if n := counts(second); n != 3 {
		t.Fatalf("second folders event: %d messages, want 3 (coalesced)", n)
	}
	if gap := second.at.Sub(first.at); gap < time.Second {
		t.Fatalf("folders events %v apart", gap)
	}
}

func TestEventsResync(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.storeOpts = []store.Option{store.WithChangeLimit(3)} })
	inbox := e.folder(store.RoleInbox)
	c := e.stream()
	err := e.store.Update(ctxT(t), func(tx *store.Tx) error {
		for i := range 5 {
			if _, err := tx.Append(store.NewMessage{MailboxID: inbox, Raw: []byte(simpleMail("a@x", "b@x", fmt.Sprint(i), "x"))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "resync", nil)
	// Fresh counts follow.
	c.waitFor(t, "folders", func(data string) bool {
		var f struct {
			Folders []api.Folder `json:"folders"`
		}
		json.Unmarshal([]byte(data), &f)
		return f.Folders[0].Messages == 5
	})
	// The stream goes on.
	e.deliver(inbox, simpleMail("a@x", "b@x", "after", "x"))
	c.waitFor(t, "mail", nil)
}

func TestEventsChat(t *testing.T) {
	e := newEnv(t)
	c := e.stream()
	conv := hexID("c")
	msg := &chat.Message{ID: hexID("m"), Conversation: conv, UID: 3, Kind: "text", Text: "hi", Status: chat.StatusDelivered}
	info := &chat.Conversation{ID: conv, Kind: chat.KindGroup, Name: "Trip", Unread: 2}
	events := []struct {
		in   chat.Event
		name string
		want string
	}{
		{chat.Event{Type: "bogus", Conversation: conv}, "", ""},   // dropped
		{chat.Event{Type: "message", Conversation: conv}, "", ""}, // no message: dropped
		{chat.Event{Type: "message", Conversation: conv, Message: msg}, "chat", `"message":{"id":"` + msg.ID},
		{chat.Event{Type: "status", Conversation: conv, Message: msg}, "receipt", `"status":"delivered"`},
		{chat.Event{Type: "typing", Conversation: conv, From: &chat.Member{Address: "tm1b@tangle", Name: "bob"}}, "typing",
			`"from":{"address":"tm1b@tangle","name":"bob"}`},
		{chat.Event{Type: "conversation", Conversation: conv, Info: info}, "conversation", `"info":{"id":"` + conv},
		{chat.Event{Type: "resync"}, "resync", `{}`},
	}
	for _, ev := range events {
		e.chat.emit(ev.in)
	}
	for _, want := range events {
		if want.name == "" {
			continue
		}
		got := c.next(t)
		if got.name != want.name || (want.name != "resync" && !strings.Contains(got.data, `"conversation":"`+conv+`"`)) || !strings.Contains(got.data, want.want) {
			t.Fatalf("event %s %s, want %s with %s", got.name, got.data, want.name, want.want)
		}
	}
}

func TestEventsProgress(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.tune = func(s *Server) { s.progressEvery = 10 * time.Millisecond } })
	job := func(done uint64) *api.Progress {
		return &api.Progress{Jobs: []api.ProgressJob{{OutboxID: 5, Recipient: "tm1b@tangle", Kind: "mail", Block: 1, Blocks: 2, Done: done, Expected: 1000}}}
	}
	e.be.setProgress(&api.Progress{Jobs: []api.ProgressJob{}, WaitingForPeers: true})
	c := e.stream()
	// The state at connect comes first.
	ev := c.next(t)
	var p api.Progress
	decodeData(t, ev, &p)
	if ev.name != "progress" || !p.WaitingForPeers || p.Jobs == nil {
		t.Fatalf("first event after hello %+v", ev)
	}
	// Each change is sent once, in order; unchanged polls send nothing.
	for _, done := range []uint64{10, 20, 30} {
		e.be.setProgress(job(done))
		ev := c.waitFor(t, "progress", nil)
		decodeData(t, ev, &p)
		if len(p.Jobs) != 1 || p.Jobs[0].Done != done || p.WaitingForPeers {
			t.Fatalf("progress %+v, want done %d", p, done)
		}
	}
	// A mail event after an unchanged state shows nothing was sent in between.
	e.deliver(e.folder(store.RoleInbox), simpleMail("a@x", "b@x", "x", "x"))
	if ev := c.next(t); ev.name != "mail" {
		t.Fatalf("after an unchanged progress: %+v, want the mail event", ev)
	}
}

func TestEventsKeepAlive(t *testing.T) {
	e := newEnv(t, func(c *envConfig) { c.tune = func(s *Server) { s.keepAlive = 50 * time.Millisecond } })
	c := e.stream()
	for range 2 {
		if ev := c.next(t); ev.comment != "keep-alive" {
			t.Fatalf("event %+v, want the keep-alive comment", ev)
		}
	}
}

func TestEventsEndWhenClientGoes(t *testing.T) {
	e, ended := streamEnds(t)
	c := e.stream()
	if e.chat.subscribers() != 1 {
		t.Fatalf("%d chat subscriptions", e.chat.subscribers())
	}
	c.cancel()
	waitEnded(t, ended)
	c.ended(t)
	// The chat subscription ends with the stream.
	select {
	case <-e.chat.unsubscribed:
	case <-time.After(eventTimeout):
		t.Fatal("the chat subscription outlived the stream")
	}
}

func TestEventsEndWhenServerCloses(t *testing.T) {
	e, ended := streamEnds(t)
	c := e.stream()
	start := time.Now()
	e.srv.Close()
	waitEnded(t, ended)
	c.ended(t)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ended after %v", d)
	}
}

// TestEventsEndAtSignOut: a stream opened with the session cookie ends when the session does.
func TestEventsEndAtSignOut(t *testing.T) {
	e, ended := streamEnds(t, func(c *envConfig) {
		prev := c.tune
		c.tune = func(s *Server) {
			if prev != nil {
				prev(s)
			}
			s.keepAlive = 20 * time.Millisecond
		}
	})
	token, _ := e.login()
	c := e.stream(withCookie(token), func(r *http.Request) { r.Header.Del("Authorization") })
	if ev := c.next(t); ev.comment != "keep-alive" {
		t.Fatalf("event %+v, want a keep-alive while signed in", ev)
	}
	e.call("POST", "/api/logout", nil, withCookie(token), withHeader("Origin", e.hs.URL)).mustCode(t, 204)
	waitEnded(t, ended)
	c.ended(t)
}
