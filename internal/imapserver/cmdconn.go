package imapserver

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// cmdConn is the connection go-imap reads from: it reads the client's commands a line at a time ahead
// of go-imap and answers what go-imap (v2.0.0-beta.8) gets wrong before go-imap sees it, so that bad
// input gets a BAD or NO with a reason and never "Internal server error", BYE or a silent disconnect:
//
//   - a command line (all its lines, without literal bytes) longer than maxCommandLine: BAD, and the
//     whole line is dropped (with a non-synchronising literal that ends it), so no piece of it is ever
//     read as a new command (go-imap stops at 50 KiB in the middle of the line);
//   - parentheses nested deeper than maxNesting: BAD (go-imap fails at 1,000 levels with a server
//     error);
//   - a line without a tag or command: "* BAD" or BAD (go-imap drops the connection); empty lines
//     are ignored;
//   - an unknown command before login: BAD, and BYE after maxBadCommands of them, as Dovecot's
//     imap-login does (go-imap says BYE at the first, against RFC 9051 §7.1.5);
//   - ID (RFC 2971): answered here, go-imap does not know it;
//   - a mailbox name that is not valid modified UTF-7 (RFC 3501 §5.1.3): NO with a reason (go-imap
//     answers NO [SERVERBUG]).
//
// The bytes go-imap gets are the client's, unchanged and in order; cmdConn hands it one line at a
// time and writes its own answers only between commands, when go-imap is waiting for the next one
// (not during IDLE, whose DONE is passed on). Literal bytes pass through unread: a synchronising
// literal once go-imap has sent its continuation request ("+"), which Write watches for; a
// non-synchronising one at once. Connections that are TLS from the start are not wrapped (go-imap
// looks for *tls.Conn).
//
// STARTTLS (RFC 9051 §6.2.1) is answered here, so that the checks go on over TLS: cmdConn does the
// handshake and reads and writes through the *tls.Conn afterwards. go-imap therefore never sees TLS,
// so every wrapped connection goes to the go-imap server that allows login without TLS, and the
// session's Login refuses a client that is not local until cmdConn has TLS ([PRIVACYREQUIRED]).
// Until login, Write makes the capabilities say so: LOGINDISABLED instead of AUTH=PLAIN for such a
// client without TLS, and no STARTTLS once TLS is on.
type cmdConn struct {
	net.Conn // the client's connection; a *tls.Conn over it after STARTTLS
	r        *bufio.Reader
	authed   func() bool

	tlsConfig  *tls.Config // STARTTLS is answered here when set
	needsTLS   bool        // the client is not local: no login before TLS (LOGINDISABLED)
	tlsActive  atomic.Bool // STARTTLS done
	capRewrite atomic.Bool // rewrite capabilities in the output (see Write)

	// Read's state: Read is called by one goroutine at a time (go-imap's, or its IDLE reader).
	pending     []byte // approved bytes go-imap has not read yet
	literal     int64  // literal bytes still to pass through
	syncLiteral int64  // a synchronising literal go-imap may accept with "+"
	// contSeen is set by Write when go-imap sends a continuation request while awaitCont is set.
	awaitCont, contSeen atomic.Bool

	// Output rewrites (see rewriteNext): written by the goroutine that runs commands, which is the
	// one that writes, except during IDLE, when no FETCH runs.
	rewrites  []rewrite
	carry     []byte // output held back: it may be the start of rewrites[0].from
	inCommand bool   // the last line ended with a literal: the next line continues its command
	cmdBytes  int    // non-literal bytes of the current command
	depth     int    // open parentheses of the current command
	cont      int    // lines to pass on as continuations (IDLE's DONE, an AUTHENTICATE response)
	bad       int    // bad commands before login
	curTag    string // tag of the command passed to go-imap, until a BAD for it is counted
	command   string // name of the last command passed to go-imap ("LSUB", "UID FETCH")
}

// Bounds of a command.
const (
	maxCommandLine = 48 << 10 // below go-imap's 50 KiB per command; RFC 2683 §3.2.1.5 asks for 8000 at least
	maxNesting     = 100      // nested parentheses in one command
	maxBadCommands = 3        // unknown or malformed commands before login, then BYE (Dovecot's imap-login)
)

func newCmdConn(c net.Conn) *cmdConn {
	return &cmdConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10), authed: func() bool { return false }}
}

func (c *cmdConn) Write(b []byte) (int, error) {
	if c.awaitCont.Load() && (bytes.HasPrefix(b, []byte("+")) || bytes.Contains(b, []byte("\n+"))) {
		c.contSeen.Store(true)
	}
	if c.curTag != "" && bytes.Contains(b, []byte(c.curTag+" BAD ")) && !c.authed() {
		c.bad++ // as Dovecot's imap-login: every BAD before login counts
		c.curTag = ""
	}
	if c.capRewrite.Load() && bytes.Contains(b, []byte("CAPABILITY")) {
		n := len(b)
		if _, err := c.write(c.rewriteCaps(b)); err != nil {
			return 0, err
		}
		return n, nil
	}
	return c.write(b)
}

// write writes b, applying the pending rewrites (see rewriteNext).
func (c *cmdConn) write(b []byte) (int, error) {
	if len(c.rewrites) == 0 && len(c.carry) == 0 {
		return c.Conn.Write(b)
	}
	data := append(c.carry, b...)
	c.carry = nil
	var out []byte
	for len(c.rewrites) > 0 {
		rw := c.rewrites[0]
		i := bytes.Index(data, rw.from)
		if i < 0 {
			// Hold back what may be the start of the item.
			keep := min(len(data), len(rw.from)-1)
			out = append(out, data[:len(data)-keep]...)
			c.carry = append([]byte(nil), data[len(data)-keep:]...)
			data = nil
			break
		}
		out = append(out, data[:i]...)
		out = append(out, rw.to...)
		data = data[i+len(rw.from):]
		c.rewrites = c.rewrites[1:]
	}
	out = append(out, data...)
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// rewrite replaces the next occurrence of from in the output by to.
type rewrite struct{ from, to []byte }

// rewriteNext makes the next occurrence of from in the output to. go-imap writes partial BINARY
// items without their origin ("BINARY[1]<0>", RFC 3516 §4.2); the session asks for the origin to be
// put in just before it has go-imap write the item. The pattern ends with the literal's size, so it
// is exact; it is matched across writes, holding back at most its length.
func (c *cmdConn) rewriteNext(from, to string) {
	c.rewrites = append(c.rewrites, rewrite{[]byte(from), []byte(to)})
}

func (c *cmdConn) Read(p []byte) (int, error) {
	if c.syncLiteral > 0 && len(c.pending) == 0 {
		c.awaitCont.Store(false)
		if c.contSeen.Swap(false) {
			c.literal = c.syncLiteral // go-imap asked for the literal
		} else {
			c.inCommand = false // go-imap refused it (no "+"): the client does not send it
		}
		c.syncLiteral = 0
	}
	for len(c.pending) == 0 {
		switch {
		case c.literal > 0:
			n, err := c.r.Read(p[:min(int64(len(p)), c.literal)])
			c.literal -= int64(n)
			return n, err
		}
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// errTooLong is readLine's error for a line longer than its limit.
var errTooLong = fmt.Errorf("imapserver: line too long")

// readLine reads a line with its line ending. A line longer than limit is read to its end and
// dropped: the result is its first limit bytes and its last 32 (to see a literal at its end), with
// errTooLong.
func (c *cmdConn) readLine(limit int) ([]byte, error) {
	var line []byte
	var tail []byte
	long := false
	for {
		frag, err := c.r.ReadSlice('\n')
		if !long {
			line = append(line, frag...)
			if len(line) > limit {
				long = true
				tail = append(tail[:0], line[max(0, len(line)-32):]...)
				line = line[:limit]
			}
		} else {
			tail = append(tail, frag...)
			tail = tail[max(0, len(tail)-32):]
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, err
		}
		if long {
			return append(line, tail...), errTooLong
		}
		return line, nil
	}
}

// next reads the client's next line and either approves it for go-imap (pending) or answers it.
func (c *cmdConn) next() error {
	limit := maxCommandLine - c.cmdBytes
	if c.cont > 0 || !c.inCommand {
		limit = maxCommandLine
	}
	line, err := c.readLine(limit)
	long := err == errTooLong
	if err != nil && !long {
		return err
	}
	body := strings.TrimRight(string(line), "\r\n")

	if c.cont > 0 {
		c.cont--
		if long {
			line = []byte("*\r\n") // cancels an AUTHENTICATE; not DONE, so IDLE ends with BAD
		}
		c.pending = line
		return nil
	}

	if c.inCommand {
		// A line that continues a command after a literal.
		c.cmdBytes += len(line)
		c.depth = nesting(body, c.depth)
		if long || c.depth > maxNesting {
			// go-imap has read part of the command: make it fail with a syntax error (BAD).
			c.skipLiteral(body)
			c.inCommand, c.cmdBytes, c.depth = false, 0, 0
			c.pending = []byte("\x00\r\n")
			return nil
		}
		c.pass(line, body)
		return nil
	}

	if c.bad >= maxBadCommands && !c.authed() {
		c.writeLines("* BYE Too many invalid commands\r\n")
		return io.EOF
	}
	c.cmdBytes, c.depth = len(line), 0
	if body == "" && !long {
		return nil // an empty line: ignored
	}
	tag, name, args, ok := splitCommand(body)
	switch {
	case tag == "":
		return c.reject("*", "BAD [CLIENTBUG] Missing or invalid command tag", body)
	case long:
		return c.reject(tag, fmt.Sprintf("BAD [CLIENTBUG] Command line too long (at most %d bytes)", maxCommandLine), body)
	case !ok:
		return c.reject(tag, "BAD [CLIENTBUG] Missing command name", body)
	}
	c.depth = nesting(body, 0)
	if c.depth > maxNesting || c.depth < 0 && -c.depth > maxNesting {
		return c.reject(tag, fmt.Sprintf("BAD [CLIENTBUG] Parentheses nested too deeply (at most %d)", maxNesting), body)
	}
	switch name {
	case "ID":
		if literalAt(body) >= 0 {
			return c.reject(tag, "BAD [CLIENTBUG] ID takes strings, not literals", body)
		}
		return c.id(tag, args)
	case "IDLE":
		c.cont = 1
	case "AUTHENTICATE":
		if mech, ir, _ := strings.Cut(args, " "); strings.EqualFold(mech, "PLAIN") && ir == "" {
			c.cont = 1
		}
	case "STARTTLS":
		if c.tlsConfig != nil {
			return c.startTLS(tag, args)
		}
	}
	if !knownCommands[name] && !c.authed() {
		c.bad++
		if c.bad >= maxBadCommands {
			c.writeLines(tag + " BAD [CLIENTBUG] Unknown command\r\n* BYE Too many invalid commands\r\n")
			return io.EOF
		}
		return c.reject(tag, "BAD [CLIENTBUG] Unknown command", body)
	}
	if seqSetArg[name] && !validSeqSet(firstArg(args)) {
		return c.reject(tag, "BAD [CLIENTBUG] Invalid sequence set (RFC 9051 §9 sequence-set)", body)
	}
	if bad := badMailboxArg(name, args); bad {
		if name == "LIST" || name == "LSUB" {
			// A pattern no mailbox name can match: nothing to list (as Dovecot answers).
			return c.reject(tag, "OK "+name+" completed (no mailbox has a name that is not modified UTF-7)", body)
		}
		return c.reject(tag, "NO [CANNOT] Mailbox name is not valid modified UTF-7 (RFC 3501 §5.1.3)", body)
	}
	if name == "STATUS" && strings.HasSuffix(strings.TrimSpace(args), "()") {
		return c.reject(tag, "BAD [CLIENTBUG] STATUS needs at least one item (RFC 9051 §6.3.11)", body)
	}
	if (name == "SEARCH" || name == "UID SEARCH") && literalAt(body) < 0 {
		if key := badSearchKey(args); key != "" {
			return c.reject(tag, "BAD [CLIENTBUG] Unknown search key or bad argument: "+strconv.Quote(key), body)
		}
	}
	c.command, c.curTag = name, tag
	c.pass(line, body)
	return nil
}

// pass approves a line for go-imap and notes a literal at its end.
func (c *cmdConn) pass(line []byte, body string) {
	c.pending = line
	c.inCommand = false
	n, sync, ok := literalSize(body)
	if !ok {
		c.cmdBytes, c.depth = 0, 0
		return
	}
	c.inCommand = true
	if sync {
		c.syncLiteral = n
		c.contSeen.Store(false)
		c.awaitCont.Store(true)
	} else {
		c.literal = n
	}
}

// reject answers a command go-imap never sees, after dropping a non-synchronising literal that
// ends it (and the lines of the command that follow). A synchronising literal is never sent: the
// client waits for a "+" that does not come.
func (c *cmdConn) reject(tag, resp, body string) error {
	if strings.HasPrefix(resp, "BAD") && !c.authed() && !strings.Contains(resp, "Unknown command") {
		c.bad++
	}
	c.skipLiteral(body)
	c.inCommand, c.cmdBytes, c.depth, c.cont = false, 0, 0, 0
	c.writeLines(tag + " " + resp + "\r\n")
	return nil
}

// skipLiteral drops the non-synchronising literal that ends body and the rest of its command.
func (c *cmdConn) skipLiteral(body string) {
	for i := 0; i < 1000; i++ {
		n, sync, ok := literalSize(body)
		if !ok || sync {
			return
		}
		if _, err := c.r.Discard(int(min(n, 1<<40))); err != nil {
			return
		}
		line, err := c.readLine(maxCommandLine)
		if err != nil && err != errTooLong {
			return
		}
		body = strings.TrimRight(string(line), "\r\n")
	}
}

// writeLines writes cmdConn's own responses; go-imap is waiting for a command, not writing.
func (c *cmdConn) writeLines(s string) {
	c.Conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	c.Conn.Write([]byte(s))
	c.Conn.SetWriteDeadline(time.Time{})
}

// id answers ID (RFC 2971 §3.1): the client's parameters (NIL or a list of string pairs) are read
// and ignored; the server says its name. Like Dovecot, ID without parameters is taken as ID NIL.
func (c *cmdConn) id(tag, args string) error {
	a := strings.TrimSpace(args)
	if a != "" && !strings.EqualFold(a, "NIL") && !(strings.HasPrefix(a, "(") && strings.HasSuffix(a, ")")) {
		return c.reject(tag, "BAD [CLIENTBUG] ID takes NIL or a list of field-value pairs (RFC 2971 §3.1)", args)
	}
	c.writeLines("* ID (\"name\" \"tanglemail\")\r\n" + tag + " OK ID completed\r\n")
	return nil
}

// knownCommands are the commands go-imap handles, plus ID (answered here).
var knownCommands = map[string]bool{}

func init() {
	for _, n := range strings.Fields("NOOP CHECK LOGOUT CAPABILITY STARTTLS AUTHENTICATE UNAUTHENTICATE LOGIN " +
		"ENABLE CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE STATUS LIST LSUB NAMESPACE IDLE SELECT EXAMINE " +
		"CLOSE UNSELECT APPEND FETCH EXPUNGE STORE COPY MOVE SEARCH ID") {
		knownCommands[n] = true
	}
	for _, n := range strings.Fields("FETCH EXPUNGE STORE COPY MOVE SEARCH") {
		knownCommands["UID "+n] = true
	}
}

// splitCommand splits "tag SP name [SP args]" (RFC 9051 §9 command); name is upper case, "UID x"
// for UID commands. tag is "" when there is no valid tag; ok is false when there is no name.
func splitCommand(line string) (tag, name, args string, ok bool) {
	t, rest, found := strings.Cut(line, " ")
	if t == "" || !isTag(t) {
		return "", "", "", false
	}
	if !found {
		return t, "", "", false
	}
	n, rest, _ := strings.Cut(rest, " ")
	n = strings.ToUpper(n)
	if n == "" || !isAtom(n) {
		return t, "", "", false
	}
	if n == "UID" {
		sub, r, _ := strings.Cut(rest, " ")
		n, rest = "UID "+strings.ToUpper(sub), r
	}
	return t, n, rest, true
}

func isAtomChar(ch byte) bool {
	switch ch {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return ch > 0x1f && ch < 0x7f
}

func isAtom(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAtomChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// isTag: tag = 1*<any ASTRING-CHAR except "+"> (RFC 9051 §9).
func isTag(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '+' || (!isAtomChar(s[i]) && s[i] != ']') {
			return false
		}
	}
	return s != ""
}

// nesting returns depth plus the parentheses the line opens minus those it closes, outside quoted
// strings. The highest depth reached counts: the result is that maximum if it exceeds maxNesting.
func nesting(line string, depth int) int {
	quoted := false
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case quoted && ch == '\\':
			i++
		case ch == '"':
			quoted = !quoted
		case quoted:
		case ch == '(':
			depth++
			if depth > maxNesting {
				return depth
			}
		case ch == ')':
			depth--
		}
	}
	return max(depth, 0)
}

// literalAt returns the index of a literal ("{n}", "{n+}", "~{n}") that ends line, or -1.
func literalAt(line string) int {
	if !strings.HasSuffix(line, "}") {
		return -1
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return -1
	}
	if i > 0 && line[i-1] == '~' {
		return i - 1
	}
	return i
}

// literalSize parses the literal that ends line: its size and whether it is synchronising.
func literalSize(line string) (n int64, sync, ok bool) {
	i := literalAt(line)
	if i < 0 {
		return 0, false, false
	}
	s := strings.TrimPrefix(line[i:], "~")
	s = s[1 : len(s)-1]
	sync = true
	if strings.HasSuffix(s, "+") || strings.HasSuffix(s, "-") {
		s, sync = s[:len(s)-1], false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false, false
	}
	return n, sync, true
}

// mailboxArgs says which arguments of a command are mailbox names (RFC 9051 §6.3, §6.4.7, §6.4.8).
var mailboxArgs = map[string][]int{
	"SELECT": {0}, "EXAMINE": {0}, "CREATE": {0}, "DELETE": {0}, "SUBSCRIBE": {0}, "UNSUBSCRIBE": {0},
	"STATUS": {0}, "APPEND": {0}, "RENAME": {0, 1}, "LIST": {0, 1}, "LSUB": {0, 1},
	"COPY": {1}, "MOVE": {1}, "UID COPY": {1}, "UID MOVE": {1},
}

// badMailboxArg reports whether a mailbox name argument (an atom or quoted string; literals are left
// to go-imap) is not valid modified UTF-7. LIST's selection options are skipped and its pattern list
// is checked name by name.
func badMailboxArg(name, args string) bool {
	idx, ok := mailboxArgs[name]
	if !ok {
		return false
	}
	toks := tokens(args)
	if name == "LIST" && len(toks) > 0 && toks[0].list {
		toks = toks[1:]
	}
	for _, i := range idx {
		if i >= len(toks) {
			continue
		}
		t := toks[i]
		values := []string{t.value}
		if t.list {
			values = t.items
		}
		for _, v := range values {
			if !validMUTF7(v) {
				return true
			}
		}
	}
	return false
}

type token struct {
	value string   // an atom or the content of a quoted string
	list  bool     // a parenthesised list: items are its atoms and strings
	items []string //
	lit   bool     // a literal (not checked)
}

// tokens splits command arguments into atoms, quoted strings, literals and lists (one level).
func tokens(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		switch ch := s[i]; {
		case ch == ' ':
			i++
		case ch == '"':
			v, n := quoted(s[i:])
			out = append(out, token{value: v})
			i += n
		case ch == '(':
			j := strings.IndexByte(s[i:], ')')
			if j < 0 {
				j = len(s) - i
			}
			t := token{list: true}
			for _, it := range tokens(s[i+1 : i+j]) {
				if !it.lit && !it.list {
					t.items = append(t.items, it.value)
				}
			}
			out = append(out, t)
			i += j + 1
		case ch == '{' || ch == '~':
			out = append(out, token{lit: true})
			i = len(s)
		default:
			j := strings.IndexAny(s[i:], " ()")
			if j < 0 {
				j = len(s) - i
			}
			if j == 0 {
				j = 1
			}
			out = append(out, token{value: s[i : i+j]})
			i += j
		}
	}
	return out
}

// quoted returns the content of the quoted string at the start of s and its length in s.
func quoted(s string) (string, int) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), i + 1
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), len(s)
}

// validMUTF7 reports whether go-imap can decode s as a mailbox name: modified UTF-7 (RFC 3501
// §5.1.3), or UTF-8. The rules are go-imap's internal/utf7.Decode (MIT licence): printable ASCII
// stands for itself, "&-" is "&", "&" base64 (with "," for "/") "-" is UTF-16BE of characters that
// are not printable ASCII, no two encoded runs in a row, no implicit end.
func validMUTF7(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < 0x20 || (ch > 0x7e && ch < utf8.RuneSelf) {
			return false
		}
		if ch != '&' {
			ascii = true
			continue
		}
		start := i + 1
		for i++; i < len(s) && s[i] != '-'; i++ {
		}
		if i == len(s) {
			return false
		}
		if i == start {
			ascii = true
			continue
		}
		if !ascii || !validUTF7Run(s[start:i]) {
			return false
		}
		ascii = false
	}
	return true
}

var mutf7Encoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

func validUTF7Run(b64 string) bool {
	if strings.ContainsAny(b64, "=\r\n") {
		return false
	}
	b, err := mutf7Encoding.DecodeString(b64)
	if err != nil || len(b)%2 == 1 || len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i += 2 {
		r := rune(b[i])<<8 | rune(b[i+1])
		if utf16.IsSurrogate(r) {
			if i += 2; i == len(b) {
				return false
			}
			if utf16.DecodeRune(r, rune(b[i])<<8|rune(b[i+1])) == utf8.RuneError {
				return false
			}
		} else if r >= 0x20 && r <= 0x7e {
			return false
		}
	}
	return true
}

// authFlag is a session's "logged in" state for its cmdConn.
type authFlag struct{ atomic.Bool }

// seqSetArg: commands whose first argument is a sequence set (RFC 9051 §6.4.5–§6.4.8, RFC 4315).
var seqSetArg = map[string]bool{
	"FETCH": true, "STORE": true, "COPY": true, "MOVE": true,
	"UID FETCH": true, "UID STORE": true, "UID COPY": true, "UID MOVE": true, "UID EXPUNGE": true,
}

func firstArg(args string) string {
	a, _, _ := strings.Cut(args, " ")
	return a
}

// validSeqSet checks sequence-set syntax (RFC 9051 §9): "$" (RFC 5182), or comma-separated numbers
// (1 to 4294967295) and "*", alone or as ranges a:b.
func validSeqSet(s string) bool {
	if s == "$" {
		return true
	}
	if s == "" {
		return false
	}
	for _, r := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(r, ":")
		if !validSeqNum(a) || (isRange && !validSeqNum(b)) {
			return false
		}
	}
	return true
}

func validSeqNum(s string) bool {
	if s == "*" {
		return true
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return err == nil && n > 0 && s[0] != '+'
}

// Search keys (RFC 9051 §6.4.4, RFC 3501 §6.4.4) and how many arguments each takes.
var searchKeys = map[string]int{
	"ALL": 0, "ANSWERED": 0, "DELETED": 0, "DRAFT": 0, "FLAGGED": 0, "NEW": 0, "OLD": 0, "RECENT": 0,
	"SEEN": 0, "UNANSWERED": 0, "UNDELETED": 0, "UNDRAFT": 0, "UNFLAGGED": 0, "UNSEEN": 0, "NOT": 0, "OR": 0,
	"BCC": 1, "BEFORE": 1, "BODY": 1, "CC": 1, "FROM": 1, "KEYWORD": 1, "LARGER": 1, "ON": 1,
	"SENTBEFORE": 1, "SENTON": 1, "SENTSINCE": 1, "SINCE": 1, "SMALLER": 1, "SUBJECT": 1, "TEXT": 1,
	"TO": 1, "UID": 1, "UNKEYWORD": 1, "HEADER": 2, "CHARSET": 1, "MODSEQ": 1,
}

// badSearchKey returns the first atom in a search key's place that is neither a search key nor a
// sequence set, or "". go-imap answers such a key with a server error. RETURN options are skipped.
func badSearchKey(args string) string {
	toks := searchTokens(args)
	if len(toks) > 0 && strings.EqualFold(toks[0], "RETURN") {
		// RETURN (opts): skip to the closing parenthesis.
		i := 1
		for depth := 0; i < len(toks); i++ {
			if toks[i] == "(" {
				depth++
			} else if toks[i] == ")" {
				depth--
				if depth <= 0 {
					i++
					break
				}
			}
		}
		toks = toks[i:]
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t == "(" || t == ")" || strings.HasPrefix(t, `"`) {
			continue
		}
		key := strings.ToUpper(t)
		n, ok := searchKeys[key]
		if !ok {
			if validSeqSet(t) {
				continue
			}
			return t
		}
		if i+n >= len(toks) && n > 0 {
			return t // its argument is missing
		}
		switch key {
		case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE":
			if _, err := time.Parse("2-Jan-2006", strings.Trim(toks[i+1], `"`)); err != nil {
				return t + " " + toks[i+1]
			}
		case "LARGER", "SMALLER":
			if _, err := strconv.ParseUint(toks[i+1], 10, 63); err != nil {
				return t + " " + toks[i+1]
			}
		}
		i += n
	}
	return ""
}

// searchTokens splits arguments into atoms, quoted strings (with their quotes) and parentheses.
func searchTokens(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ':
			i++
		case c == '(' || c == ')':
			out = append(out, s[i:i+1])
			i++
		case c == '"':
			_, n := quoted(s[i:])
			out = append(out, s[i:i+n])
			i += n
		default:
			j := strings.IndexAny(s[i:], " ()")
			if j < 0 {
				j = len(s) - i
			}
			out = append(out, s[i:i+j])
			i += j
		}
	}
	return out
}

// rewriteCaps adjusts a capability list go-imap wrote before login: go-imap's server allows login
// without TLS for every wrapped connection (see cmdConn), so LOGINDISABLED is put in for a client that
// needs TLS first (RFC 9051 §6.2.3), and STARTTLS is left out once TLS is on.
func (c *cmdConn) rewriteCaps(b []byte) []byte {
	if c.authed() {
		c.capRewrite.Store(false)
		return b
	}
	if c.tlsActive.Load() {
		return bytes.ReplaceAll(b, []byte(" STARTTLS"), nil)
	}
	if c.needsTLS {
		b = bytes.ReplaceAll(b, []byte(" AUTH=PLAIN"), nil)
		b = bytes.ReplaceAll(b, []byte("IMAP4rev1"), []byte("IMAP4rev1 LOGINDISABLED"))
	}
	return b
}

// startTLS answers STARTTLS (RFC 9051 §6.2.1) and does the TLS handshake; the connection goes on
// over TLS. A failed handshake ends the connection.
func (c *cmdConn) startTLS(tag, args string) error {
	switch {
	case args != "":
		return c.reject(tag, "BAD [CLIENTBUG] STARTTLS takes no arguments", args)
	case c.tlsActive.Load():
		return c.reject(tag, "BAD [CLIENTBUG] TLS is already active", args)
	case c.authed():
		return c.reject(tag, "BAD [CLIENTBUG] STARTTLS is for before login", args)
	}
	c.writeLines(tag + " OK Begin TLS negotiation now\r\n")
	// Bytes the client sent after STARTTLS (the start of its handshake) are in c.r already.
	buffered, _ := c.r.Peek(c.r.Buffered())
	raw := &prefixConn{Conn: c.Conn, r: io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), c.Conn)}
	tc := tls.Server(raw, c.tlsConfig)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	c.Conn = tc
	c.r = bufio.NewReaderSize(tc, 16<<10)
	c.tlsActive.Store(true)
	return nil
}

// TLS reports whether the connection has TLS (after STARTTLS).
func (c *cmdConn) TLS() bool { return c.tlsActive.Load() }

// prefixConn reads r (bytes read ahead, then the connection) and writes to the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// gone reports whether the client has closed the connection, waiting at most 1 ms and without losing
// what it sent: a read with a short deadline, into cmdConn's buffer. It is called while
// go-imap runs a command (so nobody reads), between messages of a long FETCH, so that work for a
// client that has left stops (issue 12: a FETCH went on for minutes after the client had gone).
// go-imap sets its own read deadline before it reads the next command.
func (c *cmdConn) gone() bool {
	if c.r.Buffered() > 0 {
		return false
	}
	// A deadline in the past fails before reading: 1 ms lets the read see an EOF that is there.
	c.Conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.r.Peek(1)
	c.Conn.SetReadDeadline(time.Time{})
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true // EOF, reset, closed
}
