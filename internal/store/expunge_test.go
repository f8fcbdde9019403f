package store

import (
	"errors"
	"strings"
	"testing"
)

func TestExpungeTombstonesAndHistory(t *testing.T) {
	s := openTest(t)
	ctx := testCtx(t)
	inbox := mustMailbox(t, s, "INBOX")
	for i := 0; i < 6; i++ {
		flags := []string{}
		if i%2 == 0 {
			flags = append(flags, `\Deleted`)
		}
		mustAppend(t, s, inbox.ID, rawMsg("e", itoa(int64(i))), flags...) // UIDs 1..6; 1, 3, 5 deleted
	}
	before, _ := s.Account(ctx)
	bodies := countRows(t, s, "body")

	// UID EXPUNGE of a subset only touches \Deleted messages inside it.
	e1, err := s.ExpungeUIDs(ctx, inbox.ID, UIDSet{{1, 2}})
	if err != nil || uidsString(e1.UIDs) != "1" || e1.ModSeq != before.LastModSeq+1 {
		t.Fatalf("ExpungeUIDs(1:2) = %+v, %v", e1, err)
	}
	e2, err := s.Expunge(ctx, inbox.ID)
	if err != nil || uidsString(e2.UIDs) != "3,5" || e2.ModSeq != e1.ModSeq+1 {
		t.Fatalf("Expunge = %+v, %v", e2, err)
	}
	if e3, _ := s.Expunge(ctx, inbox.ID); len(e3.UIDs) != 0 || e3.ModSeq != 0 {
		t.Errorf("second Expunge = %+v, want nothing", e3)
	}
	if got := uidsString(listUIDs(t, s, inbox.ID)); got != "2,4,6" {
		t.Errorf("live UIDs %s", got)
	}
	if got := countRows(t, s, "body"); got != bodies-3 {
		t.Errorf("bodies %d → %d: expunged bytes must be collected", bodies, got)
	}
	if n := countRows(t, s, "message WHERE expunged = 1 AND body_id IS NULL"); n != 3 {
		t.Errorf("%d tombstones, want 3", n)
	}
	if _, err := s.Raw(ctx, inbox.ID, 1); !errors.Is(err, ErrNoMessage) {
		t.Errorf("Raw of expunged: %v", err)
	}
	mb := mustMailbox(t, s, "INBOX")
	if mb.HighestModSeq != e2.ModSeq || mb.Messages != 3 {
		t.Errorf("mailbox after expunge %+v", mb)
	}

	if v, err := s.Vanished(ctx, inbox.ID, 0); err != nil || uidsString(v) != "1,3,5" {
		t.Errorf("Vanished(0) = %v, %v", v, err)
	}
	if v, _ := s.Vanished(ctx, inbox.ID, e1.ModSeq); uidsString(v) != "3,5" {
		t.Errorf("Vanished(after first expunge) = %v", v)
	}
	if st, _ := s.Account(ctx); st.HighestDeletedModSeq != 0 {
		t.Errorf("HighestDeletedModSeq %d before any purge", st.HighestDeletedModSeq)
	}

	n, err := s.PurgeTombstones(ctx, e1.ModSeq)
	if err != nil || n != 1 {
		t.Fatalf("PurgeTombstones = %d, %v", n, err)
	}
	st, _ := s.Account(ctx)
	if st.HighestDeletedModSeq != e1.ModSeq {
		t.Errorf("HighestDeletedModSeq = %d, want %d", st.HighestDeletedModSeq, e1.ModSeq)
	}
	if _, err := s.Vanished(ctx, inbox.ID, e1.ModSeq-1); !errors.Is(err, ErrHistoryGone) {
		t.Errorf("Vanished before the purged modseq: %v, want ErrHistoryGone", err)
	}
	if v, err := s.Vanished(ctx, inbox.ID, e1.ModSeq); err != nil || uidsString(v) != "3,5" {
		t.Errorf("Vanished(HighestDeletedModSeq) = %v, %v", v, err)
	}
	if a := mustAppend(t, s, inbox.ID, rawMsg("after", "purge")); a.UID != 7 {
		t.Errorf("UID after purge %d, want 7", a.UID)
	}
	checkCounts(t, s)
}

// Queries of live messages use the partial index of live rows, so their cost follows the live
// messages and not the tombstones (issue 12, BenchmarkIMAPChurn in internal/imapserver).
func TestLiveQueriesSkipTombstones(t *testing.T) {
	s := openTest(t)
	for _, q := range []string{
		`SELECT uid, flags FROM message WHERE mailbox_id = 1 AND expunged = 0 ORDER BY uid`,
		`SELECT uid, flags FROM message WHERE mailbox_id = 1 AND expunged = 0 AND uid >= 5 AND uid <= 9 ORDER BY uid`,
		`SELECT id FROM message WHERE mailbox_id = 1 AND expunged = 0 AND uid > 7 ORDER BY uid LIMIT 10`,
	} {
		rows, err := s.rdb.Query("EXPLAIN QUERY PLAN " + q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), "message_live") {
			t.Errorf("%s: plan %q does not use message_live", q, plan)
		}
	}
}
