package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/store"
)

// The chat command is a line-mode client of the node's chat API (docs/api.md, "Conversations" and
// "Event stream"). One goroutine (the session loop) owns the terminal and all state: it reads typed
// lines from a reader goroutine and events from a stream goroutine, and is the only one that prints.
// The stream goroutine keeps GET /api/events open and reconnects with exponential backoff; after a
// reconnection (or an event "resync") the session reloads the latest history and prints what it
// missed. Messages are printed once, by id, whichever of the history, the answer to a send, and the
// event stream brings them first.

const (
	chatMaxText      = 4000            // bytes of one chat message (docs/api.md)
	chatMaxInput     = 1 << 20         // longer typed lines are refused without keeping them
	chatTypingEvery  = 5 * time.Second // "bob is typing…" at most this often per member
	chatBackoffFirst = time.Second     // reconnection delay, unless the stream set "retry"
	chatBackoffMax   = 30 * time.Second
	chatCatchUp      = 100 // messages reloaded after a reconnection
)

var conversationID = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)

// chatIdleTimeout ends an event stream that brings nothing, not even the keep-alive the node sends
// every 15 s (a variable for the tests).
var chatIdleTimeout = 45 * time.Second

type chatFlags struct {
	commonFlags
	group   string
	history int
}

func chatCommand() *command {
	return &command{
		name:    "chat",
		summary: "chat with someone, or in a group, in the terminal",
		usage:   "[<petname> | <address> | <conversation id>]",
		about: `Opens the conversation with one person (a petname from your contacts, or an address tm1…@tangle)
or, with --group or a conversation id, a group, in the running node, and prints its latest messages. Then
each line you type is sent as a message, and what arrives is printed as it comes: new messages, "bob is
typing…", and the state of your own messages (→ sent, ✓ delivered, ✓✓ read, ✗ not delivered).
Messages you see are marked read, which sends read receipts.

Commands typed as a line:
  /help     list the commands
  /quit     leave (as do Ctrl-D and Ctrl-C)
  //text    send a message that starts with "/"

--group takes a conversation id, the first characters of one, or a group's name. Without an argument,
chat lists your conversations with their ids.

The chat runs through the node's API on the data directory (like "tanglemail status"): start the node
first with "tanglemail". If the connection to the node drops, chat reconnects by itself and prints
what came meanwhile. A message is at most 4,000 bytes; send longer text as mail.`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &chatFlags{}
			f.register(fs, getenv)
			fs.StringVar(&f.group, "group", "", "chat in this group: a conversation id (or its first characters) or the group's name")
			fs.IntVar(&f.history, "history", 20, "how many earlier messages to print first (0..500)")
			return f
		},
		run: runChat,
	}
}

func runChat(env *cmdEnv, o any, args []string) error {
	f := o.(*chatFlags)
	switch {
	case len(args) > 1:
		return usageError{"chat takes one petname, address or conversation id; type the messages once it runs"}
	case f.group != "" && len(args) > 0:
		return usageError{"give either --group or a petname/address, not both"}
	case f.history < 0 || f.history > 500:
		return usageError{fmt.Sprintf("--history %d: want 0..500", f.history)}
	}
	client, err := newAPIClient(env, f.dataDir)
	if err != nil {
		return err
	}
	ctx, cancel := env.context()
	defer cancel()
	if f.group == "" && len(args) == 0 {
		return listConversations(ctx, env, client)
	}
	conv, err := openConversation(ctx, client, f.group, args)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s := &chatSession{
		env:     env,
		out:     env.stdout,
		client:  client,
		conv:    conv,
		base:    "/api/conversations/" + url.PathEscape(conv.ID),
		history: f.history,
		printed: map[string]bool{},
		own:     map[string]*ownMessage{},
		typing:  map[string]time.Time{},
		now:     time.Now,
	}
	for _, m := range conv.Members {
		if m.Me {
			s.me = m.Address
		}
	}
	return s.run(ctx)
}

// openConversation finds the conversation the command line names.
func openConversation(ctx context.Context, client *apiClient, group string, args []string) (api.Conversation, error) {
	var conv api.Conversation
	if group != "" {
		return findGroup(ctx, client, group)
	}
	who := args[0]
	if conversationID.MatchString(who) {
		err := client.call(ctx, http.MethodGet, "/api/conversations/"+url.PathEscape(strings.ToLower(who)), nil, &conv)
		if apiStatus(err) == http.StatusNotFound {
			return conv, fmt.Errorf("no conversation %s (list yours with `tanglemail chat`)", who)
		}
		return conv, err
	}
	err := client.call(ctx, http.MethodPost, "/api/conversations", api.NewConversation{Peer: &who}, &conv)
	if st := apiStatus(err); st == http.StatusNotFound || st == http.StatusBadRequest {
		if strings.Contains(who, "@") || strings.HasPrefix(who, "tm1") {
			return conv, fmt.Errorf("cannot chat with %s: %w", who, err)
		}
		return conv, fmt.Errorf("cannot chat with %q: %w\n(if %s is a petname, add it first: tanglemail contacts add %s <address>)", who, err, who, who)
	}
	return conv, err
}

// findGroup resolves --group: a full id, else a unique id prefix or group name.
func findGroup(ctx context.Context, client *apiClient, sel string) (api.Conversation, error) {
	if conversationID.MatchString(sel) {
		return openConversation(ctx, client, "", []string{sel})
	}
	var list api.Conversations
	if err := client.call(ctx, http.MethodGet, "/api/conversations", nil, &list); err != nil {
		return api.Conversation{}, err
	}
	var found []api.Conversation
	for _, c := range list.Conversations {
		if strings.HasPrefix(c.ID, strings.ToLower(sel)) || (c.Kind == "group" && strings.EqualFold(c.Name, sel)) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return api.Conversation{}, fmt.Errorf("no group %q (list your conversations with `tanglemail chat`)", sel)
	}
	var sb strings.Builder
	for _, c := range found {
		fmt.Fprintf(&sb, "\n  %s  %s", c.ID, cleanLine(c.Name))
	}
	return api.Conversation{}, fmt.Errorf("--group %q matches %d conversations; give more of the id:%s", sel, len(found), sb.String())
}

func listConversations(ctx context.Context, env *cmdEnv, client *apiClient) error {
	var list api.Conversations
	if err := client.call(ctx, http.MethodGet, "/api/conversations", nil, &list); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	w := env.stdout
	if len(list.Conversations) == 0 {
		fmt.Fprintln(w, "No conversations yet. Start one with: tanglemail chat <petname or address>")
		return nil
	}
	for _, c := range list.Conversations {
		title := cleanLine(c.Name)
		if c.Kind == "group" {
			title = fmt.Sprintf("%s (group of %d)", title, len(c.Members))
			if c.Left {
				title = cleanLine(c.Name) + " (group, left)"
			}
		}
		unread := ""
		if c.Unread > 0 {
			unread = fmt.Sprintf("%d unread", c.Unread)
		}
		last := ""
		if c.Last != nil {
			last = stamp(c.Last.Sent, time.Now()) + " " + truncateRunes(cleanLine(c.Last.Text), 40)
		}
		fmt.Fprintf(w, "%s  %-28s %-9s %s\n", c.ID[:min(8, len(c.ID))], title, unread, last)
	}
	fmt.Fprintln(w, "\nOpen one with: tanglemail chat <petname>, or tanglemail chat --group <id>")
	return nil
}

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

	printed  map[string]bool        // ids of printed messages
	own      map[string]*ownMessage // the user's messages whose status is known
	floorUID store.UID              // history before this UID was never shown
	maxUID   store.UID              // the highest UID shown
	typing   map[string]time.Time   // member address → when "is typing" was shown
	needRead bool                   // an unseen incoming message was shown
	everUp   bool                   // the event stream was connected once
}

type ownMessage struct {
	status string
	text   string
}

// streamItem is what the stream goroutine reports: an event, a connection, or a failure.
type streamItem struct {
	ev    *sseEvent
	up    bool          // connected
	again bool          // connected after a loss: events may have been missed
	err   error         // the connection failed or broke
	retry time.Duration // when the next attempt is made
	fatal bool          // no further attempt
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
	lines := readInput(stdin, ctx.Done())
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
  /help    this list
  /quit    leave (as do Ctrl-D and Ctrl-C)
  //text   send a message that starts with "/"
Anything else you type is sent when you press Enter (at most 4,000 bytes a message).
`)
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

// inputLine is one line typed (without its line ending), or the error that ended the input.
type inputLine struct {
	text    string
	tooLong bool // longer than chatMaxInput: text is empty
	err     error
}

// readInput reads lines from r until EOF (a last line without newline counts), then closes the
// channel. It stops early when done is closed (but a blocked Read blocks until it returns).
func readInput(r io.Reader, done <-chan struct{}) <-chan inputLine {
	ch := make(chan inputLine)
	go func() {
		defer close(ch)
		send := func(in inputLine) bool {
			select {
			case ch <- in:
				return true
			case <-done:
				return false
			}
		}
		br := bufio.NewReader(r)
		for {
			var buf []byte
			tooLong := false
			var err error
			for {
				var chunk []byte
				chunk, err = br.ReadSlice('\n')
				if !tooLong && len(buf)+len(chunk) <= chatMaxInput+2 {
					buf = append(buf, chunk...)
				} else {
					tooLong, buf = true, nil
				}
				if err != bufio.ErrBufferFull {
					break
				}
			}
			if len(buf) > 0 || tooLong {
				text := strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r")
				if !send(inputLine{text: text, tooLong: tooLong || len(text) > chatMaxInput}) {
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					send(inputLine{err: err})
				}
				return
			}
		}
	}()
	return ch
}

// stamp formats t for a chat line: the time of day, with the date unless it is today.
func stamp(t, now time.Time) string {
	if t.IsZero() {
		return "--:--"
	}
	t, now = t.Local(), now.Local()
	switch {
	case t.YearDay() == now.YearDay() && t.Year() == now.Year():
		return t.Format("15:04")
	case t.Year() == now.Year():
		return t.Format("Jan 2 15:04")
	}
	return t.Format("2006-01-02 15:04")
}

// cleanLine makes text from the network safe to print on a terminal: control characters (escape
// sequences, CR, line breaks) and bidirectional overrides become U+FFFD or a space, so that a message
// cannot move the cursor, change colours or disguise itself as something else.
func cleanLine(s string) string {
	clean := true
	for _, r := range s {
		if r != '\t' && (unicode.IsControl(r) || isBidiControl(r) || r == '\u2028' || r == '\u2029') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return r
		case r == '\n' || r == '\u2028' || r == '\u2029':
			return ' '
		case unicode.IsControl(r) || isBidiControl(r):
			return '\uFFFD'
		}
		return r
	}, s)
}

func isBidiControl(r rune) bool {
	return (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069')
}

// shortAddress shortens tm1…@tangle addresses for chat lines: enough to tell people apart.
func shortAddress(a string) string {
	local, _, _ := strings.Cut(a, "@")
	local = cleanLine(local)
	if r := []rune(local); len(r) > 16 {
		return string(r[:10]) + "…" + string(r[len(r)-4:])
	}
	return local
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func roundDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
