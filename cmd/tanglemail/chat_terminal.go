package main

import (
	"bufio"
	"io"
	"strings"
	"time"
	"unicode"
)

// The terminal side of the chat command: reading typed lines, and making what is printed safe and short.

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
