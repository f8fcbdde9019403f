package main

import (
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The terminal side of the chat command: reading typed lines, and making what is printed safe and short.

// inputLine is one line typed (without its line ending), a line being typed (partial), or the error
// that ended the input.
type inputLine struct {
	text    string
	partial bool // the line is not finished: text is what is typed so far (for typing notices and echo)
	tooLong bool // longer than chatMaxInput: text is empty
	err     error
}

// lineEditor assembles typed bytes into lines. With edit set (the terminal's own line editing and echo
// are off, see rawTerminal) it does the editing a terminal would: backspace and DEL erase a character,
// Ctrl-U the line, Ctrl-D on an empty line ends the input, CR or LF ends a line, and other control
// characters are dropped. Without edit (a pipe, or a terminal in its normal mode) only LF ends a line
// (a CR before it is dropped).
type lineEditor struct {
	edit    bool
	buf     []byte
	tooLong bool
}

// feed adds b and returns the lines it finished; changed says the unfinished line changed, eof that
// Ctrl-D ended the input.
func (e *lineEditor) feed(b []byte) (lines []inputLine, changed, eof bool) {
	for _, c := range b {
		switch {
		case c == '\n' || (e.edit && c == '\r'):
			text := string(e.buf)
			if !e.edit {
				text = strings.TrimSuffix(text, "\r")
			}
			lines = append(lines, inputLine{text: text, tooLong: e.tooLong || len(text) > chatMaxInput})
			e.buf, e.tooLong, changed = e.buf[:0], false, false
			continue
		case e.edit && (c == 0x7f || c == 0x08):
			if len(e.buf) > 0 {
				_, n := utf8.DecodeLastRune(e.buf)
				e.buf = e.buf[:len(e.buf)-n]
				changed = true
			}
			continue
		case e.edit && c == 0x15: // Ctrl-U
			e.buf, e.tooLong, changed = e.buf[:0], false, true
			continue
		case e.edit && c == 0x04: // Ctrl-D
			if len(e.buf) == 0 && !e.tooLong {
				return lines, false, true
			}
			continue
		case e.edit && c < 0x20 && c != '\t':
			continue
		}
		if e.tooLong {
			continue
		}
		if len(e.buf) >= chatMaxInput+2 {
			e.buf, e.tooLong = e.buf[:0], true
			continue
		}
		e.buf = append(e.buf, c)
		changed = true
	}
	return lines, changed, false
}

// readInput reads lines from r until EOF (a last line without newline counts), then closes the
// channel; between lines it reports the line being typed (partial), once per read that changed it.
// edit is lineEditor's. It stops early when done is closed (but a blocked Read blocks until it
// returns).
func readInput(r io.Reader, edit bool, done <-chan struct{}) <-chan inputLine {
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
		e := &lineEditor{edit: edit}
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			lines, changed, eof := e.feed(buf[:n])
			for _, l := range lines {
				if !send(l) {
					return
				}
			}
			if changed && !e.tooLong {
				if !send(inputLine{text: string(e.buf), partial: true}) {
					return
				}
			}
			if eof {
				return
			}
			if err != nil {
				if len(e.buf) > 0 || e.tooLong {
					if !send(inputLine{text: string(e.buf), tooLong: e.tooLong}) {
						return
					}
				}
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
