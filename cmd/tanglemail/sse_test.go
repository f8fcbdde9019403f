package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// readAllEvents reads events until the stream ends; err is nil at io.EOF.
func readAllEvents(r io.Reader) ([]sseEvent, *sseReader, error) {
	p := newSSEReader(r)
	var evs []sseEvent
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return evs, p, nil
		}
		if err != nil {
			return evs, p, err
		}
		evs = append(evs, ev)
	}
}

func TestSSEParser(t *testing.T) {
	msg := func(data string) sseEvent { return sseEvent{Type: "message", Data: data} }
	for _, tc := range []struct {
		name string
		in   string
		want []sseEvent
	}{
		{"named event", "event: chat\ndata: {\"a\":1}\n\n", []sseEvent{{Type: "chat", Data: `{"a":1}`}}},
		{"multi-line data", "data: a\ndata:\ndata: b\n\n", []sseEvent{msg("a\n\nb")}},
		{"CRLF", "event: x\r\ndata: y\r\ndata: z\r\n\r\n", []sseEvent{{Type: "x", Data: "y\nz"}}},
		{"lone CR", "data: y\rdata: z\r\r", []sseEvent{msg("y\nz")}},
		{"mixed endings", "data: a\r\ndata: b\rdata: c\n\r\n", []sseEvent{msg("a\nb\nc")}},
		{"comments", ": keep-alive\n\n:\ndata: z\n: between\n\n", []sseEvent{msg("z")}},
		{"missing trailing blank line", "data: a\n\ndata: b\n", []sseEvent{msg("a")}},
		{"unterminated last line", "data: a\n\ndata: b", []sseEvent{msg("a")}},
		{"no space, or two", "data:x\ndata:  y\n\n", []sseEvent{msg("x\n y")}},
		{"colon in value", "data: a: b\n\n", []sseEvent{msg("a: b")}},
		{"field without colon", "data\n\ndata\ndata\n\n", []sseEvent{msg(""), msg("\n")}},
		{"event without data is dropped, type reset", "event: foo\n\ndata: x\n\n", []sseEvent{msg("x")}},
		{"type set twice", "event: a\nevent: b\ndata: x\n\n", []sseEvent{{Type: "b", Data: "x"}}},
		{"empty event field", "event:\ndata: x\n\n", []sseEvent{msg("x")}},
		{"unknown fields", "foo: bar\nDATA: no\ndata : no\ndata: a\n\n", []sseEvent{msg("a")}},
		{"leading BOM", "\xEF\xBB\xBFdata: a\n\n", []sseEvent{msg("a")}},
		{"BOM only once", "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", []sseEvent{msg("b")}},
		{"ids persist", "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
			[]sseEvent{{Type: "message", Data: "a", ID: "7"}, {Type: "message", Data: "b", ID: "7"}, msg("c")}},
		{"id with NUL ignored", "id: 1\n\nid: 2\x003\ndata: a\n\n", []sseEvent{{Type: "message", Data: "a", ID: "1"}}},
		{"invalid UTF-8", "data: \xE2\x82A\xFF\n\n", []sseEvent{msg("\uFFFDA\uFFFD")}},
		{"blank lines only", "\n\n\r\n\r\r", nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, rd := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tc.in)},
				{"bytewise", iotest.OneByteReader(strings.NewReader(tc.in))},
				{"halves", iotest.HalfReader(strings.NewReader(tc.in))},
			} {
				got, _, err := readAllEvents(rd.r)
				if err != nil {
					t.Fatalf("%s: %v", rd.name, err)
				}
				if !equalEvents(got, tc.want) {
					t.Fatalf("%s: %q\n got %+v\nwant %+v", rd.name, tc.in, got, tc.want)
				}
			}
		})
	}
}

func equalEvents(a, b []sseEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSSERetry(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"retry: 1500\n":                    1500 * time.Millisecond,
		"retry: 1500\nretry: x\n":          1500 * time.Millisecond,
		"retry: 1.5\n":                     0,
		"retry:\n":                         0,
		"retry: -1\n":                      0,
		"retry: 99999999999999999999999\n": sseMaxRetry,
	} {
		_, p, err := readAllEvents(strings.NewReader(in))
		if err != nil || p.Retry() != want {
			t.Errorf("%q: retry %v (err %v), want %v", in, p.Retry(), err, want)
		}
	}
}

// A lone CR ends a line at once: a stream whose lines end in CR dispatches without waiting for more.
func TestSSELoneCRDoesNotWait(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	got := make(chan sseEvent, 1)
	go func() {
		ev, err := newSSEReader(pr).Next()
		if err == nil {
			got <- ev
		}
	}()
	if _, err := pw.Write([]byte("event: chat\rdata: hi\r\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Type != "chat" || ev.Data != "hi" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event was not dispatched until more bytes came")
	}
}

func TestSSELimits(t *testing.T) {
	long := "data: " + strings.Repeat("x", sseMaxLine) + "\n\n"
	if _, _, err := readAllEvents(strings.NewReader(long)); !errors.Is(err, errSSETooLarge) {
		t.Fatalf("over-long line: %v", err)
	}
	many := strings.Repeat("data: "+strings.Repeat("y", 1<<16)+"\n", sseMaxData>>16+1) + "\n"
	if _, _, err := readAllEvents(strings.NewReader(many)); !errors.Is(err, errSSETooLarge) {
		t.Fatalf("over-large event: %v", err)
	}
	// Just under the line limit is fine.
	ok := "data:" + strings.Repeat("z", sseMaxLine-5) + "\n\n"
	if evs, _, err := readAllEvents(strings.NewReader(ok)); err != nil || len(evs) != 1 {
		t.Fatalf("line at the limit: %d events, %v", len(evs), err)
	}
}

func TestSSEReaderError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom))
	evs, _, err := readAllEvents(r)
	if !errors.Is(err, boom) || len(evs) != 1 {
		t.Fatalf("events %+v, err %v", evs, err)
	}
}

// The decoder follows the WHATWG UTF-8 decoder: one U+FFFD per maximal invalid subpart (the
// expectations are Python's bytes.decode("utf-8", "replace"), which does the same).
func TestDecodeUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"\xE2\x82A":                    "\uFFFDA",
		"\xE0\x80":                     "\uFFFD\uFFFD",
		"\xED\xA0\x80":                 "\uFFFD\uFFFD\uFFFD",
		"\xF4\x90\x80\x80":             "\uFFFD\uFFFD\uFFFD\uFFFD",
		"\xF0\x9F\x98":                 "\uFFFD",
		"\xC0\xAF":                     "\uFFFD\uFFFD",
		"a\xF0\x9F\x98\x80b":           "a😀b",
		"\xF0\x9F\x98A\xFF":            "\uFFFDA\uFFFD",
		"\xEF\xBF\xBF\xED\x9F\xBF\x80": "\uFFFF\uD7FF\uFFFD",
	} {
		if got := decodeUTF8([]byte(in)); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// referenceSSE is a second, deliberately simple reading of the same spec text, on the whole input at
// once: split into lines first, then interpret them.
func referenceSSE(in []byte) (events []sseEvent) {
	in = bytes.TrimPrefix(in, []byte("\xEF\xBB\xBF"))
	var lines []string
	for {
		i := bytes.IndexAny(in, "\r\n")
		if i < 0 {
			break // an unterminated last line is not a line
		}
		lines = append(lines, decodeUTF8(in[:i]))
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			i++
		}
		in = in[i+1:]
	}
	var typ, id, lastID string
	var data []string
	for _, l := range lines {
		if l == "" {
			lastID = id
			if data != nil {
				ev := sseEvent{Type: typ, Data: strings.Join(data, "\n"), ID: lastID}
				if ev.Type == "" {
					ev.Type = "message"
				}
				events = append(events, ev)
			}
			typ, data = "", nil
			continue
		}
		if strings.HasPrefix(l, ":") {
			continue
		}
		name, value := l, ""
		if i := strings.Index(l, ":"); i >= 0 {
			name, value = l[:i], l[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch name {
		case "event":
			typ = value
		case "data":
			data = append(data, value)
		case "id":
			if strings.IndexByte(value, 0) < 0 {
				id = value
			}
		}
	}
	return events
}

// chunkReader returns at most n bytes per Read, to move chunk boundaries around (CR|LF splits).
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

func FuzzParseSSE(f *testing.F) {
	f.Fuzz(func(t *testing.T, chunk uint8, in []byte) {
		got, _, err := readAllEvents(&chunkReader{b: in, n: int(chunk%16) + 1})
		if err != nil {
			if errors.Is(err, errSSETooLarge) {
				return
			}
			t.Fatalf("error on a finite stream: %v", err)
		}
		for _, ev := range got {
			if ev.Type == "" || !utf8.ValidString(ev.Type) || !utf8.ValidString(ev.Data) || !utf8.ValidString(ev.ID) ||
				strings.ContainsAny(ev.Type+ev.ID, "\r\n") || strings.ContainsRune(ev.ID, 0) || strings.Contains(ev.Data, "\r") {
				t.Fatalf("bad event %+v", ev)
			}
		}
		if want := referenceSSE(in); !equalEvents(got, want) {
			t.Fatalf("chunk %d, %q:\n got %+v\nwant %+v", chunk%16+1, in, got, want)
		}
	})
}
