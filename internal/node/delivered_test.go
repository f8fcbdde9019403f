package node

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tanglemail/tanglemail/internal/store"
)

// The keyword the README promises on a delivered mail's Sent copy is what a mail client sees over IMAP
// (issue 13, "the README's $Delivered matches what the server sets").
func TestDeliveredKeywordAsREADMESays(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "`"+store.DeliveredKeyword+"`") {
		t.Fatalf("README.md does not name the keyword %s", store.DeliveredKeyword)
	}
	alice, bob := startPair(t)
	bobAddr := bob.Identity().Address().Mail()
	submit(t, alice, []string{bobAddr}, "From: <"+alice.Identity().Address().Mail()+">\r\nTo: <"+bobAddr+">\r\n"+
		"Subject: delivered?\r\nMessage-ID: <delivered@tangle>\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\n\r\nhi\r\n")
	waitFor(t, "the delivery receipt at alice", 60*time.Second, func() bool {
		items, err := alice.Mailboxes().OutboxItems(context.Background())
		return err == nil && len(items) == 1 && len(items[0].Rcpts) == 1 && items[0].Rcpts[0].State == store.RcptDelivered
	})

	c, err := imapclient.DialInsecure(alice.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	loginSelect(t, c, alice, "Sent")
	var flags []imap.Flag
	waitFor(t, "a keyword on the Sent copy", 10*time.Second, func() bool {
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
		if err != nil || len(msgs) != 1 {
			return false
		}
		flags = msgs[0].Flags
		return slices.ContainsFunc(flags, func(f imap.Flag) bool { return strings.EqualFold(string(f), store.DeliveredKeyword) })
	})
	if !slices.Contains(flags, imap.Flag(store.DeliveredKeyword)) {
		t.Fatalf("Sent copy's flags %v, want %s as the README says", flags, store.DeliveredKeyword)
	}
}

// loginSelect logs c in as n's user and selects mailbox.
func loginSelect(tb testing.TB, c *imapclient.Client, n *Node, mailbox string) {
	tb.Helper()
	if err := c.Login(n.Identity().Address().Mail(), n.Password()).Wait(); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Select(mailbox, nil).Wait(); err != nil {
		tb.Fatal(err)
	}
}
