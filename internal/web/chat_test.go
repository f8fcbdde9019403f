package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/chat"
)

func TestChatUnavailable(t *testing.T) {
	e := newEnv(t, withoutChat)
	id := hexID("x")
	cases := []struct{ method, path string }{
		{"GET", "/api/conversations"},
		{"POST", "/api/conversations"},
		{"GET", "/api/conversations/" + id},
		{"PATCH", "/api/conversations/" + id},
		{"POST", "/api/conversations/" + id + "/members"},
		{"DELETE", "/api/conversations/" + id + "/members/x"},
		{"POST", "/api/conversations/" + id + "/leave"},
		{"GET", "/api/conversations/" + id + "/messages"},
		{"POST", "/api/conversations/" + id + "/messages"},
		{"POST", "/api/conversations/" + id + "/read"},
		{"POST", "/api/conversations/" + id + "/typing"},
	}
	for _, c := range cases {
		r := e.call(c.method, c.path, nil).mustCode(t, http.StatusServiceUnavailable)
		if msg := r.errMsg(t); msg != "chat is not available on this node" {
			t.Fatalf("%s %s: %q", c.method, c.path, msg)
		}
	}
	// Authentication and methods are checked first.
	e.call("GET", "/api/conversations", nil, noAuth).mustCode(t, 401)
	e.call("PUT", "/api/conversations", nil).mustCode(t, 405)
	// The event stream works without chat.
	e.stream()
}

func TestConversations(t *testing.T) {
	e := newEnv(t)
	var direct chat.Conversation
	e.call("POST", "/api/conversations", map[string]any{"peer": "bob"}).mustCode(t, 200).decode(t, &direct)
	if direct.Kind != chat.KindDirect || direct.Peer != "bob" || len(direct.ID) != 32 {
		t.Fatalf("direct %+v", direct)
	}
	// Made on first use, then the same.
	var again chat.Conversation
	e.call("POST", "/api/conversations", map[string]any{"peer": " bob "}).mustCode(t, 200).decode(t, &again)
	if again.ID != direct.ID {
		t.Fatalf("second Direct gave %s, want %s", again.ID, direct.ID)
	}
	var group chat.Conversation
	e.call("POST", "/api/conversations", map[string]any{"name": "Trip", "members": []string{"bob", "carol"}}).
		mustCode(t, 201).decode(t, &group)
	if group.Kind != chat.KindGroup || group.Name != "Trip" || len(group.Members) != 2 {
		t.Fatalf("group %+v", group)
	}
	var list struct {
		Conversations []chat.Conversation `json:"conversations"`
	}
	e.call("GET", "/api/conversations", nil).mustCode(t, 200).decode(t, &list)
	if len(list.Conversations) != 2 {
		t.Fatalf("conversations %+v", list)
	}
	var one chat.Conversation
	e.call("GET", "/api/conversations/"+group.ID, nil).mustCode(t, 200).decode(t, &one)
	if one.ID != group.ID || one.Name != "Trip" {
		t.Fatalf("conversation %+v", one)
	}

	gid := "/api/conversations/" + group.ID
	cases := []struct {
		name         string
		method, path string
		body         any
		code         int
		errHas       string
		call         string // the service call it must make, if any
	}{
		{"rename", "PATCH", gid, map[string]any{"name": "Holiday"}, 204, "", "Rename Holiday " + group.ID},
		{"rename without name", "PATCH", gid, map[string]any{}, 400, `"name" is missing`, ""},
		{"rename empty", "PATCH", gid, map[string]any{"name": " "}, 400, "empty", ""},
		{"rename too long", "PATCH", gid, map[string]any{"name": strings.Repeat("n", 101)}, 400, "too long", ""},
		{"rename newline", "PATCH", gid, map[string]any{"name": "a\nb"}, 400, "one line", ""},
		{"add member", "POST", gid + "/members", map[string]any{"member": "dave"}, 204, "", "AddMember dave " + group.ID},
		{"add member missing", "POST", gid + "/members", map[string]any{}, 400, `"member" is missing`, ""},
		{"add member wrong field", "POST", gid + "/members", map[string]any{"members": []string{"x"}}, 400, `unknown field "members"`, ""},
		{"remove member", "DELETE", gid + "/members/" + url.PathEscape("tm1x@tangle"), nil, 204, "", "RemoveMember tm1x@tangle " + group.ID},
		{"read", "POST", gid + "/read", nil, 204, "", "MarkRead " + group.ID},
		{"typing", "POST", gid + "/typing", nil, 204, "", "Typing " + group.ID},
		{"leave", "POST", gid + "/leave", nil, 204, "", "Leave " + group.ID},
		{"rename after leaving", "PATCH", gid, map[string]any{"name": "X"}, 409, "you left", ""},
		{"send after leaving", "POST", gid + "/messages", map[string]any{"text": "hi"}, 409, "you left", ""},
		{"unknown conversation", "GET", "/api/conversations/" + hexID("none"), nil, 404, "", ""},
		{"unknown conversation read", "POST", "/api/conversations/" + hexID("none") + "/read", nil, 404, "", ""},
		{"bad id", "GET", "/api/conversations/xyz", nil, 400, "32 lower-case hex", ""},
		{"upper-case id", "GET", "/api/conversations/" + strings.ToUpper(group.ID), nil, 400, "32 lower-case hex", ""},
		{"peer and group", "POST", "/api/conversations", map[string]any{"peer": "bob", "name": "x"}, 400, "not both", ""},
		{"nothing", "POST", "/api/conversations", map[string]any{}, 400, `give "peer"`, ""},
		{"empty peer", "POST", "/api/conversations", map[string]any{"peer": ""}, 400, `"peer"`, ""},
		{"service refuses peer", "POST", "/api/conversations", map[string]any{"peer": "nobody"}, 400, "neither a petname", ""},
		{"group without name", "POST", "/api/conversations", map[string]any{"members": []string{"bob"}}, 400, `"name" is missing`, ""},
		{"group without members", "POST", "/api/conversations", map[string]any{"name": "x"}, 400, `"members"`, ""},
		{"group too big", "POST", "/api/conversations", map[string]any{"name": "x", "members": make([]string, 100)}, 400, "at most 99", ""},
		{"group empty member", "POST", "/api/conversations", map[string]any{"name": "x", "members": []string{""}}, 400, `"members"`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.chat.called())
			r := e.call(c.method, c.path, c.body).mustCode(t, c.code)
			if c.code >= 400 {
				r.mustErr(t, c.errHas)
			}
			calls := e.chat.called()[before:]
			if c.call != "" && !slices.Contains(calls, c.call) {
				t.Fatalf("calls %q, want %q", calls, c.call)
			}
			if c.code == 400 && c.errHas != "neither a petname" && len(calls) != 0 {
				t.Fatalf("a bad request reached the service: %q", calls)
			}
		})
	}
}

func TestChatMessages(t *testing.T) {
	e := newEnv(t)
	var c chat.Conversation
	e.call("POST", "/api/conversations", map[string]any{"peer": "bob"}).mustCode(t, 200).decode(t, &c)
	path := "/api/conversations/" + c.ID + "/messages"
	for i := 1; i <= 5; i++ {
		var m chat.Message
		e.call("POST", path, map[string]any{"text": fmt.Sprintf("text %d", i)}).mustCode(t, 202).decode(t, &m)
		if m.Text != fmt.Sprintf("text %d", i) || m.Status != chat.StatusSending || !m.Mine || m.Conversation != c.ID {
			t.Fatalf("sent %+v", m)
		}
	}
	type history struct {
		Messages []chat.Message `json:"messages"`
		More     bool           `json:"more"`
	}
	cases := []struct {
		query string
		texts []string
		more  bool
	}{
		{"", []string{"text 1", "text 2", "text 3", "text 4", "text 5"}, false},
		{"?limit=2", []string{"text 4", "text 5"}, true},
		{"?limit=2&before=4", []string{"text 2", "text 3"}, true},
		{"?limit=3&before=4", []string{"text 1", "text 2", "text 3"}, false},
		{"?before=1", nil, false},
	}
	for _, cs := range cases {
		var h history
		e.call("GET", path+cs.query, nil).mustCode(t, 200).decode(t, &h)
		var texts []string
		for _, m := range h.Messages {
			texts = append(texts, m.Text)
		}
		if !slices.Equal(texts, cs.texts) || h.More != cs.more {
			t.Fatalf("%s: %q more %v, want %q %v", cs.query, texts, h.More, cs.texts, cs.more)
		}
	}
	bad := []struct {
		method, path string
		body         any
		code         int
		errHas       string
	}{
		{"GET", path + "?limit=0", nil, 400, "limit"},
		{"GET", path + "?limit=501", nil, 400, "limit"},
		{"GET", path + "?before=x", nil, 400, "before"},
		{"POST", path, map[string]any{}, 400, `"text" is missing`},
		{"POST", path, map[string]any{"text": ""}, 400, `"text" is missing`},
		{"POST", path, map[string]any{"text": strings.Repeat("é", 2001)}, 413, "at most 4000 bytes"},
		{"POST", path, map[string]any{"text": 5}, 400, `"text" must be a string`},
		{"POST", path, "not json", 400, "not valid JSON"},
	}
	for _, b := range bad {
		r := e.call(b.method, b.path, b.body).mustCode(t, b.code)
		if msg := r.errMsg(t); !strings.Contains(msg, b.errHas) {
			t.Fatalf("%s %s: error %q, want %q in it", b.method, b.path, msg, b.errHas)
		}
	}
	e.call("POST", path, `{"text":"x"}`, withHeader("Content-Type", "text/plain")).mustCode(t, 415)
	// 4000 bytes exactly is fine.
	e.call("POST", path, map[string]any{"text": strings.Repeat("é", 2000)}).mustCode(t, 202)
}

func TestChatServiceFailure(t *testing.T) {
	e := newEnv(t)
	var c chat.Conversation
	e.call("POST", "/api/conversations", map[string]any{"peer": "bob"}).mustCode(t, 200).decode(t, &c)
	e.chat.mu.Lock()
	e.chat.fail = errBoom
	e.chat.mu.Unlock()
	for _, req := range []struct{ method, path string }{
		{"GET", "/api/conversations"},
		{"GET", "/api/conversations/" + c.ID},
		{"POST", "/api/conversations/" + c.ID + "/typing"},
		{"GET", "/api/conversations/" + c.ID + "/messages"},
	} {
		r := e.call(req.method, req.path, nil).mustCode(t, 500)
		if msg := r.errMsg(t); strings.Contains(msg, errBoom.Error()) || !strings.Contains(msg, "log") {
			t.Fatalf("500 message %q: must not show the internal error, must point at the log", msg)
		}
	}
}
