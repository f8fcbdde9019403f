package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
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
	chatTypingSend   = 3 * time.Second // a typing notice at most this often (as the web client)
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
	group    string
	newGroup string
	history  int
}

func chatCommand() *command {
	return &command{
		name:    "chat",
		summary: "chat with someone, or in a group, in the terminal",
		usage:   "[<petname> | <address> | <conversation id>] | --group <group> | --new-group <name> <member>…",
		about: `Opens the conversation with one person (a petname from your contacts, or an address tm1…@tangle)
or, with --group or a conversation id, a group, in the running node, and prints its latest messages. Then
each line you type is sent as a message, and what arrives is printed as it comes: new messages, "bob is
typing…", and the state of your own messages (→ sent, ✓ delivered, ✓✓ read, ✗ not delivered).
Messages you see are marked read, which sends read receipts.

While you type a line, the others see "… is typing" (a notice at most every 3 s). Your line is shown
once, as sent: "me: …".

Commands typed as a line:
  /help            list the commands
  /quit            leave (as do Ctrl-D and Ctrl-C)
  /members         list the group's members
  /add <member>    add a member to the group (a petname or an address)
  /remove <member> remove a member from the group (a petname, an address, or the name shown)
  /rename <name>   rename the group
  /leave           leave the group (you can still read it, but no longer write to it)
  //text           send a message that starts with "/"

--group takes a conversation id, the first characters of one, or a group's name. --new-group NAME
creates a group of you and the members named after it (petnames or addresses) and opens it:

  tanglemail chat --new-group "lunch crew" bob carol

Without an argument, chat lists your conversations with their ids.

The chat runs through the node's API on the data directory (like "tanglemail status"): start the node
first with "tanglemail". If the connection to the node drops, chat reconnects by itself and prints
what came meanwhile. A message is at most 4,000 bytes; send longer text as mail.`,
		flags: func(fs *flag.FlagSet, getenv func(string) string) any {
			f := &chatFlags{}
			f.register(fs, getenv)
			fs.StringVar(&f.group, "group", "", "chat in this group: a conversation id (or its first characters) or the group's name")
			fs.StringVar(&f.newGroup, "new-group", "", "create a group with this name, of you and the members given as arguments, and chat in it")
			fs.IntVar(&f.history, "history", 20, "how many earlier messages to print first (0..500)")
			return f
		},
		run: runChat,
	}
}

func runChat(env *cmdEnv, o any, args []string) error {
	f := o.(*chatFlags)
	switch {
	case f.newGroup != "" && f.group != "":
		return usageError{"give either --group (an existing group) or --new-group (a new one), not both"}
	case f.newGroup != "" && len(args) == 0:
		return usageError{"--new-group " + f.newGroup + ": name the members after it (petnames or addresses), e.g. tanglemail chat --new-group lunch bob carol"}
	case f.newGroup == "" && len(args) > 1:
		return usageError{"chat takes one petname, address or conversation id; type the messages once it runs (a group of several: --new-group NAME member…)"}
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
	if f.group == "" && f.newGroup == "" && len(args) == 0 {
		return listConversations(ctx, env, client)
	}
	var conv api.Conversation
	if f.newGroup != "" {
		err = client.call(ctx, http.MethodPost, "/api/conversations", api.NewConversation{Name: &f.newGroup, Members: args}, &conv)
		if err != nil {
			err = fmt.Errorf("could not create the group: %w", err)
		}
	} else {
		conv, err = openConversation(ctx, client, f.group, args)
	}
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
