package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/store"
)

// The session loop of the chat command (see cmd_chat.go): it owns the conversation's state and the
// terminal's output, and acts on typed lines (handleLine) and stream items (handleStream) one at a time.

// chatSession is one open conversation in the terminal; all its fields belong to the session loop.
type chatSession struct {
	env     *cmdEnv
	out     io.Writer
	client  *apiClient
	conv    api.Conversation
	base    string // /api/conversations/<id>
	history int
	me      string // the user's address, from the members or the hello event
	now     func() time.Time

	printed   map[string]bool        // ids of printed messages
	own       map[string]*ownMessage // the user's messages whose status is known
	floorUID  store.UID              // history before this UID was never shown
	maxUID    store.UID              // the highest UID shown
	typing    map[string]time.Time   // member address → when "is typing" was shown
	needRead  bool                   // an unseen incoming message was shown
	lastTyped time.Time              // when the last typing notice was sent
	prompt    *promptWriter          // the line being typed, when the chat echoes it itself (else nil)
	everUp    bool                   // the event stream was connected once
}

type ownMessage struct {
	status string
	text   string
}

func (s *chatSession) run(ctx context.Context) error {
	s.printHeader()
	items := make(chan streamItem, 64)
	streamCtx, stopStream := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.stream(streamCtx, items)
	}()
	defer func() {
		stopStream()
		wg.Wait()
	}()

	// Let the event stream connect before the history is loaded, so that nothing falls between the
	// two (what both bring is printed once). Wait at most a few seconds: the stream keeps trying.
	var early []streamItem
	timer := time.NewTimer(3 * time.Second)
wait:
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case it := <-items:
			early = append(early, it)
			if it.ev == nil {
				break wait
			}
		case <-timer.C:
			break wait
		}
	}
	timer.Stop()
	if err := s.showHistory(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for _, it := range early {
		if err := s.handleStream(ctx, it); err != nil {
			return err
		}
	}
	s.markReadIfNeeded(ctx, items)

	stdin := s.env.stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	restore, edit := rawTerminal(stdin)
	defer restore()
	if edit {
		s.prompt = &promptWriter{w: s.out}
		s.out = s.prompt
	}
	lines := readInput(stdin, edit, ctx.Done())
	for {
		select {
		case <-ctx.Done():
			return nil
		case in, ok := <-lines:
			if !ok {
				return nil
			}
			if in.err != nil {
				return fmt.Errorf("reading what you type: %w", in.err)
			}
			if in.partial {
				s.typed(ctx, in.text)
				continue
			}
			if s.prompt != nil {
				s.prompt.set("") // the line goes: it is shown as sent, "me: …", not twice
			}
			if s.handleLine(ctx, in) {
				return nil
			}
		case it := <-items:
			if err := s.handleStream(ctx, it); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		s.markReadIfNeeded(ctx, items)
	}
}

func (s *chatSession) printHeader() {
	c := s.conv
	if c.Kind == "group" {
		var names []string
		for _, m := range c.Members {
			if !m.Me {
				names = append(names, s.nameOf(m))
			}
		}
		fmt.Fprintf(s.out, "Group “%s” with %s.\n", cleanLine(c.Name), strings.Join(names, ", "))
		if c.Left {
			fmt.Fprintln(s.out, "You left this group: you can read it, but not write to it.")
		}
	} else {
		name, addr := cleanLine(c.Name), c.Peer
		if name == "" || name == addr {
			fmt.Fprintf(s.out, "Chat with %s.\n", cleanLine(addr))
		} else {
			fmt.Fprintf(s.out, "Chat with %s <%s>.\n", name, cleanLine(addr))
		}
	}
	fmt.Fprintln(s.out, "Type a message and press Enter to send it; /help lists commands; Ctrl-D leaves.")
}

func (s *chatSession) showHistory(ctx context.Context) error {
	if s.history == 0 {
		return nil
	}
	var h api.ChatHistory
	if err := s.client.call(ctx, http.MethodGet, s.base+"/messages?limit="+strconv.Itoa(s.history), nil, &h); err != nil {
		return fmt.Errorf("loading the conversation: %w", err)
	}
	if h.More {
		fmt.Fprintln(s.out, "-- earlier messages are not shown (--history sets how many are)")
	}
	if len(h.Messages) > 0 && h.More {
		s.floorUID = h.Messages[0].UID
	}
	for _, m := range h.Messages {
		s.printMessage(m)
	}
	if s.conv.Unread > 0 {
		s.needRead = true
	}
	return nil
}

// catchUp prints what the event stream may have missed: messages newer than the history shown, and
// status changes of the user's messages.
func (s *chatSession) catchUp(ctx context.Context) {
	var h api.ChatHistory
	if err := s.client.call(ctx, http.MethodGet, s.base+"/messages?limit="+strconv.Itoa(chatCatchUp), nil, &h); err != nil {
		if ctx.Err() == nil {
			s.notice("could not reload the conversation: %v", err)
		}
		return
	}
	if h.More && len(h.Messages) > 0 && h.Messages[0].UID > s.maxUID {
		s.notice("more messages came than are shown here")
	}
	for _, m := range h.Messages {
		switch {
		case m.UID <= s.floorUID:
		case !s.printed[m.ID]:
			s.printMessage(m)
		case m.Mine:
			s.updateStatus(m)
		}
	}
}

func (s *chatSession) markReadIfNeeded(ctx context.Context, items chan streamItem) {
	if !s.needRead || len(items) > 0 {
		return // more is coming: mark once after it
	}
	s.needRead = false
	if err := s.client.call(ctx, http.MethodPost, s.base+"/read", nil, nil); err != nil && ctx.Err() == nil {
		s.notice("could not mark the conversation read: %v", err)
	}
}

// handleLine sends a typed line or runs a command; it reports whether to leave.
func (s *chatSession) handleLine(ctx context.Context, in inputLine) (quit bool) {
	text := in.text
	if in.tooLong {
		s.notice("not sent: the line is longer than %d bytes; one message holds at most %d (send long text as mail)", chatMaxInput, chatMaxText)
		return false
	}
	if strings.TrimSpace(text) == "" {
		return false
	}
	if strings.HasPrefix(text, "/") && !strings.HasPrefix(text, "//") {
		switch cmd, _, _ := strings.Cut(strings.TrimSpace(text), " "); cmd {
		case "/quit", "/q", "/exit":
			return true
		case "/help", "/?":
			fmt.Fprint(s.out, `Commands:
  /help            this list
  /quit            leave (as do Ctrl-D and Ctrl-C)
  /members         list the group's members
  /add <member>    add a member to the group (a petname or an address)
  /remove <member> remove a member from the group
  /rename <name>   rename the group
  /leave           leave the group
  //text           send a message that starts with "/"
Anything else you type is sent when you press Enter (at most 4,000 bytes a message).
`)
		case "/members", "/add", "/remove", "/rename", "/leave":
			_, arg, _ := strings.Cut(strings.TrimSpace(text), " ")
			s.groupCommand(ctx, cmd, strings.TrimSpace(arg))
		default:
			s.notice("no command %s: /help lists them (start a message with // to send text beginning with /)", cleanLine(cmd))
		}
		return false
	}
	if strings.HasPrefix(text, "//") {
		text = text[1:]
	}
	if len(text) > chatMaxText {
		s.notice("not sent: the message has %d bytes, at most %d fit (send long text as mail)", len(text), chatMaxText)
		return false
	}
	var m api.ChatMessage
	if err := s.client.call(ctx, http.MethodPost, s.base+"/messages", api.ChatText{Text: &text}, &m); err != nil {
		if ctx.Err() == nil {
			s.notice("not sent: %v", err)
		}
		return false
	}
	m.Mine = true
	s.printMessage(m)
	return false
}

func (s *chatSession) handleStream(ctx context.Context, it streamItem) error {
	switch {
	case it.ev != nil:
		s.handleEvent(ctx, *it.ev)
	case it.up:
		if it.again {
			s.notice("connected to the node again")
			s.catchUp(ctx)
		}
		s.everUp = true
	case it.err != nil:
		if it.fatal {
			return fmt.Errorf("live updates from the node failed: %w", it.err)
		}
		if s.everUp {
			s.notice("lost the connection to the node: %v; trying again in %s", it.err, roundDuration(it.retry))
		} else {
			s.notice("no live updates yet: %v; trying again in %s", it.err, roundDuration(it.retry))
		}
	}
	return nil
}

func (s *chatSession) handleEvent(ctx context.Context, ev sseEvent) {
	if ev.Type == "resync" {
		s.catchUp(ctx)
		return
	}
	var d struct {
		api.Me
		api.ChatEvent
	}
	if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
		return // not for us, or from a newer node: ignore
	}
	if ev.Type == "hello" {
		if d.Address != "" {
			s.me = d.Address
		}
		return
	}
	if d.Conversation != s.conv.ID {
		return
	}
	switch ev.Type {
	case "chat":
		if d.Message != nil {
			s.printMessage(*d.Message)
		}
	case "receipt":
		if d.Message != nil {
			s.updateStatus(*d.Message)
		}
	case "typing":
		if d.From != nil {
			s.showTyping(*d.From)
		}
	case "conversation":
		if d.Info != nil {
			s.updateConversation(*d.Info)
		}
	}
}

func (s *chatSession) printMessage(m api.ChatMessage) {
	if m.ID != "" && s.printed[m.ID] {
		if m.Mine {
			s.updateStatus(m)
		}
		return
	}
	if m.ID != "" {
		s.printed[m.ID] = true
	}
	s.maxUID = max(s.maxUID, m.UID)
	ts := stamp(m.Sent, s.now())
	indent := strings.Repeat(" ", len(ts)+1)
	lines := strings.Split(strings.TrimRight(m.Text, "\n"), "\n")
	for i := range lines {
		lines[i] = cleanLine(lines[i])
	}
	who := s.nameOf(m.From)
	if m.Mine {
		who = "me"
	}
	if m.Kind == "event" {
		fmt.Fprintf(s.out, "%s * %s\n", ts, strings.Join(lines, " "))
	} else {
		suffix := ""
		if m.Mine {
			if label := statusLabel(m.Status); label != "" {
				suffix = "  (" + label + ")"
			}
		}
		fmt.Fprintf(s.out, "%s %s: %s", ts, who, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(s.out, "\n%s%s", indent, l)
		}
		fmt.Fprintf(s.out, "%s\n", suffix)
	}
	if m.Mine {
		if m.Kind != "event" {
			s.own[m.ID] = &ownMessage{status: m.Status, text: m.Text}
		}
		return
	}
	delete(s.typing, m.From.Address)
	if !m.Seen {
		s.needRead = true
	}
}

// updateStatus prints a change of the status of one of the user's messages.
func (s *chatSession) updateStatus(m api.ChatMessage) {
	if m.Kind == "event" {
		return // membership changes are sent too, but their delivery is not the user's business here
	}
	o := s.own[m.ID]
	if o == nil {
		o = &ownMessage{text: m.Text}
		s.own[m.ID] = o
	}
	if m.Status == o.status || m.Status == "" {
		return
	}
	o.status = m.Status
	if m.Text != "" {
		o.text = m.Text
	}
	label := statusLabel(m.Status)
	if label == "" {
		return
	}
	fmt.Fprintf(s.out, "      %s: “%s”\n", label, truncateRunes(cleanLine(strings.ReplaceAll(o.text, "\n", " ")), 32))
}

func statusLabel(status string) string {
	switch status {
	case "sent":
		return "→ sent"
	case "delivered":
		return "✓ delivered"
	case "read":
		return "✓✓ read"
	case "failed":
		return "✗ not delivered (the bounce in your INBOX says why)"
	}
	return ""
}

func (s *chatSession) showTyping(from api.Member) {
	if from.Me || (s.me != "" && from.Address == s.me) {
		return
	}
	now := s.now()
	if last, ok := s.typing[from.Address]; ok && now.Sub(last) < chatTypingEvery {
		return
	}
	s.typing[from.Address] = now
	fmt.Fprintf(s.out, "      %s is typing…\n", s.nameOf(from))
}

func (s *chatSession) updateConversation(c api.Conversation) {
	old := s.conv
	if c.ID != old.ID {
		return // the event names the conversation; an info without the same id is not about it
	}
	s.conv = c
	if c.Kind == "group" && c.Name != old.Name && c.Name != "" {
		s.notice("the group is now called “%s”", cleanLine(c.Name))
	}
	if c.Left && !old.Left {
		s.notice("you are no longer in this group: you can read it, but not write to it")
	}
}

// nameOf is how a member is shown: "me", the petname, or a shortened address.
func (s *chatSession) nameOf(m api.Member) string {
	if m.Me || (s.me != "" && m.Address == s.me) {
		return "me"
	}
	if m.Name != "" {
		return cleanLine(m.Name)
	}
	for _, c := range s.conv.Members {
		if c.Address == m.Address && c.Name != "" {
			return cleanLine(c.Name)
		}
	}
	if m.Address == s.conv.Peer && s.conv.Kind != "group" && s.conv.Name != "" && s.conv.Name != s.conv.Peer {
		return cleanLine(s.conv.Name)
	}
	return shortAddress(m.Address)
}

func (s *chatSession) notice(format string, args ...any) {
	fmt.Fprintf(s.out, "-- "+format+"\n", args...)
}

// typed is called with the line being typed: it sends a typing notice, at most every chatTypingSend
// (as the web client does), and never for a command. Notices are best effort: a failure is not shown.
func (s *chatSession) typed(ctx context.Context, text string) {
	if s.prompt != nil {
		s.prompt.set(text)
	}
	if strings.TrimSpace(text) == "" || (strings.HasPrefix(text, "/") && !strings.HasPrefix(text, "//")) || s.conv.Left {
		return
	}
	now := s.now()
	if !s.lastTyped.IsZero() && now.Sub(s.lastTyped) < chatTypingSend {
		return
	}
	s.lastTyped = now
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = s.client.call(tctx, http.MethodPost, s.base+"/typing", nil, nil)
}

// groupCommand runs /members, /add, /remove, /rename or /leave. What changes comes back as a
// conversation event (and, for the others, as an event line in the history).
func (s *chatSession) groupCommand(ctx context.Context, cmd, arg string) {
	if s.conv.Kind != "group" {
		s.notice("%s works in a group; this is a chat with one person (make a group with: tanglemail chat --new-group NAME member…)", cmd)
		return
	}
	var err error
	switch cmd {
	case "/members":
		var c api.Conversation
		if err = s.client.call(ctx, http.MethodGet, s.base, nil, &c); err == nil {
			s.updateConversation(c)
			s.printMembers()
		}
	case "/add":
		if arg == "" {
			s.notice("/add <member>: name the member, a petname or an address")
			return
		}
		err = s.client.call(ctx, http.MethodPost, s.base+"/members", api.AddMember{Member: &arg}, nil)
		if err == nil {
			s.notice("added %s", cleanLine(arg))
		}
	case "/remove":
		addr := s.memberAddress(arg)
		if addr == "" {
			s.notice("/remove %s: no such member (/members lists them)", cleanLine(arg))
			return
		}
		err = s.client.call(ctx, http.MethodDelete, s.base+"/members/"+url.PathEscape(addr), nil, nil)
		if err == nil {
			s.notice("removed %s", cleanLine(arg))
		}
	case "/rename":
		if arg == "" {
			s.notice("/rename <name>: give the group's new name")
			return
		}
		err = s.client.call(ctx, http.MethodPatch, s.base, api.Rename{Name: &arg}, nil)
	case "/leave":
		err = s.client.call(ctx, http.MethodPost, s.base+"/leave", nil, nil)
	}
	if err != nil && ctx.Err() == nil {
		s.notice("%s failed: %v", cmd, err)
	}
}

// memberAddress finds a member of the group by address, the name shown, or a petname.
func (s *chatSession) memberAddress(who string) string {
	for _, m := range s.conv.Members {
		if !m.Me && (strings.EqualFold(m.Address, who) || strings.EqualFold(m.Name, who) || s.nameOf(m) == who) {
			return m.Address
		}
	}
	return ""
}

func (s *chatSession) printMembers() {
	if s.conv.Left {
		s.notice("you left this group")
		return
	}
	fmt.Fprintf(s.out, "Members of “%s”:\n", cleanLine(s.conv.Name))
	for _, m := range s.conv.Members {
		if m.Me {
			fmt.Fprintf(s.out, "  me       %s\n", cleanLine(m.Address))
		} else {
			fmt.Fprintf(s.out, "  %-8s %s\n", s.nameOf(m), cleanLine(m.Address))
		}
	}
}

// promptWriter is the chat's output when it echoes the line being typed itself: before anything is
// printed the typed line is erased, and after a complete line it is drawn again below, so that what
// arrives never mixes with what is being typed. Only the session loop uses it.
type promptWriter struct {
	w       io.Writer
	pending string // the line being typed
	shown   bool   // pending is on the screen, at the cursor's line
}

// clearLine moves to the start of the line and erases it (ECMA-48 CR, EL).
const clearLine = "\r\x1b[K"

func (p *promptWriter) Write(b []byte) (int, error) {
	if p.shown {
		io.WriteString(p.w, clearLine)
		p.shown = false
	}
	n, err := p.w.Write(b)
	if err == nil && len(b) > 0 && b[len(b)-1] == '\n' && p.pending != "" {
		io.WriteString(p.w, cleanLine(p.pending))
		p.shown = true
	}
	return n, err
}

// set shows text as the line being typed.
func (p *promptWriter) set(text string) {
	p.pending = text
	io.WriteString(p.w, clearLine+cleanLine(text))
	p.shown = text != ""
}
