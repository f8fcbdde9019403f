package chat

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// letter is a chat text or change in the form it is filed in Chats: an RFC 5322 message (§3.6) that
// mail clients can read, with the Chat-* fields that let the chat view read it back.
type letter struct {
	From         string // the author's address
	To           string // 1:1: the other party's address; "" for a group
	GroupName    string // group: the name, for To and Chat-Group-Name
	Conversation ID
	Message      ID
	Sent         time.Time
	Event        string // "" for a text; else create, add, remove, leave, rename
	Member       string // add, remove: the member's address
	Text         string // a text; for an event, a sentence describing it with addresses
}

var eventOfType = map[Type]string{TypeCreate: "create", TypeAdd: "add", TypeRemove: "remove", TypeLeave: "leave", TypeRename: "rename"}

// encodeWord encodes s for an unstructured header field or a phrase (RFC 2047 §5) if it is not plain
// printable ASCII.
func encodeWord(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\' {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// subject is "Chat: " and the first line of the text, at most 60 characters.
func subject(text string) string {
	line, _, _ := strings.Cut(text, "\n")
	line = strings.TrimSpace(line)
	if utf8.RuneCountInString(line) > 60 {
		line = string([]rune(line)[:60]) + "…"
	}
	return "Chat: " + line
}

// render returns the letter as an RFC 5322 message with CRLF line ends.
func (l *letter) render() []byte {
	var b bytes.Buffer
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("From", l.From)
	if l.To != "" {
		h("To", l.To)
	} else {
		// RFC 5322 §3.4: a group with no addresses names the chat without listing its members.
		h("To", `"`+strings.NewReplacer(`"`, "", `\`, "").Replace(encodeWord(l.GroupName))+`" :;`)
	}
	h("Date", l.Sent.Format(time.RFC1123Z))
	h("Subject", encodeWord(subject(l.Text)))
	h("Message-ID", "<"+l.Message.String()+"@tangle>")
	h("Chat-Version", "1")
	h("Chat-Conversation-ID", l.Conversation.String())
	if l.To == "" {
		h("Chat-Group-Name", encodeWord(l.GroupName))
	}
	if l.Event != "" {
		h("Chat-Event", l.Event)
		if l.Member != "" {
			h("Chat-Event-Member", l.Member)
		}
	}
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	w := quotedprintable.NewWriter(&b)
	_, _ = w.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(l.Text, "\r\n", "\n"), "\n", "\r\n")))
	_ = w.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// readLetter reads back what render wrote (and tolerates what a mail client might have made of it).
func readLetter(raw []byte) (*letter, error) {
	m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, fmt.Errorf("chat: stored message: %w", err)
	}
	dec := new(mime.WordDecoder)
	word := func(k string) string {
		v := m.Header.Get(k)
		if d, err := dec.DecodeHeader(v); err == nil {
			return d
		}
		return v
	}
	l := &letter{From: m.Header.Get("From"), Event: m.Header.Get("Chat-Event"), Member: m.Header.Get("Chat-Event-Member"),
		GroupName: word("Chat-Group-Name")}
	if t, err := m.Header.Date(); err == nil {
		l.Sent = t
	}
	var body io.Reader = m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(m.Body)
	}
	text, err := io.ReadAll(io.LimitReader(body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("chat: stored message body: %w", err)
	}
	l.Text = strings.TrimSuffix(strings.ReplaceAll(string(text), "\r\n", "\n"), "\n")
	if id := strings.Trim(m.Header.Get("Message-ID"), "<> "); id != "" {
		if h, _, ok := strings.Cut(id, "@"); ok {
			l.Message, _ = ParseID(h)
		}
	}
	return l, nil
}
