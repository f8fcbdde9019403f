package gateway

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"

	"github.com/tanglemail/tanglemail/internal/mail"
)

// deliveredReport builds the success notification for rcpt (RFC 3464 in an RFC 6522 multipart/report,
// Action: delivered, Status: 2.0.0, §2.3.3): the gateway's "delivery receipt" to the sender, filed in
// their INBOX. msg is the delivered message; only its header is quoted.
func deliveredReport(msg []byte, rcpt string, now time.Time, postmaster string) []byte {
	hdr := msg
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		hdr = msg[:i+2]
	} else if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		hdr = msg[:i+1]
	}
	orig, _ := mail.Parse(hdr)
	if orig == nil {
		orig = &mail.Message{}
	}
	rcpt = strings.Join(strings.Fields(rcpt), "")
	var h gomail.Header
	h.SetAddressList("From", []*gomail.Address{{Name: "Mail Delivery System", Address: postmaster}})
	if len(orig.From) > 0 {
		h.SetAddressList("To", []*gomail.Address{{Name: orig.From[0].Name, Address: orig.From[0].Address}})
	}
	subject := "Delivered: " + rcpt
	if orig.Subject != "" {
		subject = "Delivered: " + strings.Join(strings.Fields(orig.Subject), " ")
	}
	h.SetSubject(subject)
	h.Set("Date", mail.FormatDate(now))
	h.Set("Message-ID", "<"+mail.NewMessageID()+">")
	if orig.MessageID != "" {
		h.Set("In-Reply-To", "<"+orig.MessageID+">")
		h.Set("References", "<"+orig.MessageID+">")
	}
	h.Set("Auto-Submitted", "auto-replied")
	h.SetContentType("multipart/report", map[string]string{"report-type": "delivery-status"})
	var buf bytes.Buffer
	w, err := gomessage.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil
	}
	part := func(ct, cte, body string) {
		var ph gomessage.Header
		ph.SetContentType(ct, nil)
		ph.Set("Content-Transfer-Encoding", cte)
		pw, err := w.CreatePart(ph)
		if err != nil {
			return
		}
		pw.Write([]byte(body))
		pw.Close()
	}
	part("text/plain", "8bit", fmt.Sprintf("Your message was delivered to %s.\r\n\r\nThe recipient's mail server "+
		"accepted it; what it does with it from there is up to it.\r\n", rcpt))
	part("message/delivery-status", "7bit", fmt.Sprintf("Reporting-MTA: dns; %s\r\n\r\nFinal-Recipient: rfc822; %s\r\n"+
		"Action: delivered\r\nStatus: 2.0.0\r\nLast-Attempt-Date: %s\r\n", strings.TrimPrefix(postmaster, "postmaster@"), rcpt, mail.FormatDate(now)))
	part("text/rfc822-headers", "8bit", string(hdr))
	w.Close()
	return buf.Bytes()
}
