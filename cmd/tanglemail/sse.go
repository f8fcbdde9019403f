package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file parses a server-sent events stream (text/event-stream) as the WHATWG HTML standard,
// §9.2.6 "Interpreting an event stream", says:
//
//   - The stream is decoded as UTF-8 ("UTF-8 decode": one leading byte order mark is dropped, and each
//     maximal invalid subsequence becomes U+FFFD).
//   - Lines end with CRLF, a lone LF or a lone CR. A lone CR ends its line at once (the reader does not
//     wait to see whether an LF follows), and an LF right after it is skipped when it comes.
//   - An empty line dispatches the event; a line starting with ':' is a comment; otherwise the field
//     name is the text before the first ':' and the value the text after it, less one leading space (a
//     line without ':' is a field with an empty value). Fields: event, data (appended, with an LF, to the
//     data buffer), id (ignored if it contains NUL), retry (ASCII digits only: the reconnection time
//     in milliseconds); others are ignored.
//   - Dispatch sets the last event ID; an event with an empty data buffer is not dispatched; one
//     trailing LF of the data is removed; the type is "message" unless an event field set one.
//   - At the end of the stream a partial line and an event not yet dispatched are discarded.
//
// Lines and events are limited (sseMaxLine, sseMaxData) so that a broken server cannot exhaust
// memory; exceeding a limit is an error, after which the stream is to be reconnected.

const (
	sseMaxLine  = 1 << 20 // bytes of one line
	sseMaxData  = 4 << 20 // bytes of one event's data
	sseMaxRetry = time.Hour
)

var errSSETooLarge = errors.New("event stream: line or event too large")

// sseEvent is one dispatched event.
type sseEvent struct {
	Type string // the event field, or "message"
	Data string
	ID   string // the stream's last event ID when the event was dispatched
}

// sseReader reads events from a text/event-stream body. It is not safe for concurrent use.
type sseReader struct {
	r       *bufio.Reader
	started bool // the first line (and a BOM) was read
	skipLF  bool // the last line ended with CR: an LF next is part of that line ending
	line    []byte

	eventType string
	data      []byte
	idBuffer  string
	lastID    string
	retry     time.Duration // the last valid retry field, 0 if none came
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 4096)}
}

// Next returns the next event. At the end of the stream it returns io.EOF (or the reader's error),
// discarding an event whose blank line did not come.
func (s *sseReader) Next() (sseEvent, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if ev, ok, err := s.processLine(line); err != nil || ok {
			return ev, err
		}
	}
}

// LastEventID is the last event ID of the stream (for the Last-Event-ID header of a reconnection).
func (s *sseReader) LastEventID() string { return s.lastID }

// Retry is the reconnection time the stream asked for, or 0.
func (s *sseReader) Retry() time.Duration { return s.retry }

// readLine returns the next complete line without its ending, decoded. A partial line at the end of the
// stream is dropped: the stream's error (io.EOF) is returned instead.
func (s *sseReader) readLine() (string, error) {
	s.line = s.line[:0]
	for {
		if s.skipLF {
			b, err := s.r.Peek(1)
			if err != nil {
				return "", err
			}
			if b[0] == '\n' {
				_, _ = s.r.Discard(1)
			}
			s.skipLF = false
		}
		n := s.r.Buffered()
		if n == 0 {
			if _, err := s.r.Peek(1); err != nil {
				return "", err
			}
			n = s.r.Buffered()
		}
		buf, _ := s.r.Peek(n)
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			i = len(buf)
		}
		if len(s.line)+i > sseMaxLine {
			return "", errSSETooLarge
		}
		s.line = append(s.line, buf[:i]...)
		if i < len(buf) {
			s.skipLF = buf[i] == '\r'
			_, _ = s.r.Discard(i + 1)
			break
		}
		_, _ = s.r.Discard(i)
	}
	line := s.line
	if !s.started {
		s.started = true
		line = bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF"))
	}
	return decodeUTF8(line), nil
}

// processLine interprets one line; ok reports a dispatched event.
func (s *sseReader) processLine(line string) (ev sseEvent, ok bool, err error) {
	if line == "" {
		ev, ok = s.dispatch()
		return ev, ok, nil
	}
	if line[0] == ':' {
		return ev, false, nil
	}
	field, value, found := strings.Cut(line, ":")
	if found {
		value = strings.TrimPrefix(value, " ")
	}
	switch field {
	case "event":
		s.eventType = value
	case "data":
		if len(s.data)+len(value)+1 > sseMaxData {
			return ev, false, errSSETooLarge
		}
		s.data = append(s.data, value...)
		s.data = append(s.data, '\n')
	case "id":
		if !strings.Contains(value, "\x00") {
			s.idBuffer = value
		}
	case "retry":
		if value != "" && strings.Trim(value, "0123456789") == "" {
			ms, err := strconv.ParseInt(value, 10, 64)
			if err != nil || ms > int64(sseMaxRetry/time.Millisecond) {
				s.retry = sseMaxRetry
			} else {
				s.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return ev, false, nil
}

func (s *sseReader) dispatch() (sseEvent, bool) {
	s.lastID = s.idBuffer
	if len(s.data) == 0 {
		s.eventType = ""
		return sseEvent{}, false
	}
	ev := sseEvent{Type: s.eventType, Data: string(s.data[:len(s.data)-1]), ID: s.lastID}
	if ev.Type == "" {
		ev.Type = "message"
	}
	s.eventType, s.data = "", s.data[:0]
	return ev, true
}

// decodeUTF8 is the WHATWG Encoding standard's UTF-8 decoder (§8.1.1) without BOM handling: each
// maximal subpart of an invalid sequence becomes one U+FFFD (Go's utf8 package, unlike it, replaces
// a truncated sequence byte by byte).
func decodeUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	var cp rune
	needed, seen := 0, 0
	lower, upper := byte(0x80), byte(0xBF)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if needed == 0 {
			switch {
			case c <= 0x7F:
				sb.WriteByte(c)
			case c >= 0xC2 && c <= 0xDF:
				needed, cp = 1, rune(c&0x1F)
			case c >= 0xE0 && c <= 0xEF:
				if c == 0xE0 {
					lower = 0xA0
				} else if c == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(c&0x0F)
			case c >= 0xF0 && c <= 0xF4:
				if c == 0xF0 {
					lower = 0x90
				} else if c == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(c&0x07)
			default:
				sb.WriteRune(utf8.RuneError)
			}
			continue
		}
		if c < lower || c > upper {
			// The sequence ends early: one U+FFFD for it, and c starts over.
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			sb.WriteRune(utf8.RuneError)
			i--
			continue
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(c&0x3F)
		seen++
		if seen == needed {
			sb.WriteRune(cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		sb.WriteRune(utf8.RuneError)
	}
	return sb.String()
}
