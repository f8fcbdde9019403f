package store

import (
	"bytes"
	"context"
	"strconv"
	"testing"
)

// benchMsg is a 2 KiB message; i makes each one distinct (no body sharing).
func benchMsg(i int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@tangle>\r\nTo: bob@tangle\r\nSubject: bench " + strconv.Itoa(i) +
		"\r\nDate: Mon, 02 Jan 2026 15:04:05 +0100\r\nMessage-ID: <" + strconv.Itoa(i) + "@bench>\r\n\r\n")
	for b.Len() < 2048 {
		b.WriteString("The quick brown fox jumps over the lazy dog.\r\n")
	}
	return b.Bytes()
}

// BenchmarkAppend measures durable appends: each is its own transaction, committed with
// synchronous=FULL (one WAL fsync) before Append returns.
func BenchmarkAppend(b *testing.B) {
	s := openTest(b)
	inbox := mustMailbox(b, s, "INBOX")
	ctx := context.Background()
	msgs := make([][]byte, 0, 1024)
	for i := range cap(msgs) {
		msgs = append(msgs, benchMsg(i))
	}
	i := 0
	b.SetBytes(int64(len(msgs[0])))
	b.ResetTimer()
	for b.Loop() {
		raw := msgs[i%len(msgs)]
		raw = append(raw[:len(raw):len(raw)], strconv.Itoa(i)...) // distinct bytes every time
		if _, err := s.Append(ctx, NewMessage{MailboxID: inbox.ID, Raw: raw}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkList1000 measures listing 1,000 messages' UID, flags, modseq, size and internal date.
func BenchmarkList1000(b *testing.B) {
	s := openTest(b)
	inbox := mustMailbox(b, s, "INBOX")
	ctx := context.Background()
	err := s.Update(ctx, func(tx *Tx) error {
		for i := range 1000 {
			f := Flags{}
			if i%3 == 0 {
				f = Flags{System: FlagSeen, Keywords: []string{"$label1"}}
			}
			if _, err := tx.Append(NewMessage{MailboxID: inbox.ID, Raw: benchMsg(i), Flags: f}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		l, err := s.List(ctx, inbox.ID, ListQuery{})
		if err != nil || len(l.Messages) != 1000 {
			b.Fatalf("List: %d messages, %v", len(l.Messages), err)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "msgs/s")
}
