package mail

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
)

// Reason says why a recipient did not get a message: an RFC 3463 enhanced status code and the same
// in plain words for the sender.
type Reason struct {
	Status string // e.g. "5.4.7"; anything not of the form "5.x.y" or "4.x.y" is sent as "5.0.0"
	Text   string // e.g. "no delivery receipt within 4 days"
}

// NoReceipt is the reason for a recipient whose node never sent a delivery receipt: RFC 3463 5.4.7
// (delivery time expired).
func NoReceipt(waited time.Duration) Reason {
	return Reason{Status: "5.4.7", Text: "no delivery receipt within " + humanDuration(waited)}
}

// BlobNotFetched is the reason for a recipient of blob mail (protocol.md §13.8) whose node did not fetch
// the blob and acknowledge the message within its lifetime, after which the blob is deleted: RFC 3463
// 5.4.7 (delivery time expired).
func BlobNotFetched(waited time.Duration) Reason {
	return Reason{Status: "5.4.7", Text: "the recipient's node did not download the large message within " + humanDuration(waited) +
		"; its sealed copy is deleted now, so send it again if it is still wanted"}
}

// TooLarge is the reason for a message larger than the network carries (RFC 3463 5.3.4).
func TooLarge(size, limit int64) Reason {
	return Reason{Status: "5.3.4", Text: fmt.Sprintf("the message is %d bytes, more than the %d bytes tanglemail sends", size, limit)}
}

func humanDuration(d time.Duration) string {
	unit := func(n int64, s string) string {
		if n == 1 {
			return "1 " + s
		}
		return fmt.Sprintf("%d %ss", n, s)
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	}
	return d.String()
}

var statusRE = regexp.MustCompile(`^[45]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// ReportingMTA is the Reporting-MTA of tanglemail's delivery status notifications (RFC 3464 §2.2.2).
const ReportingMTA = "dns; tangle"

// Bounce builds the delivery status notification (RFC 3464, in an RFC 6522 multipart/report) that
// tells the sender that rcpt ("<address>@tangle") did not get a message, for the sender's INBOX. origHeader
// is the original message's header (the whole message may be passed; only its header is used and
// returned). The three parts are:
//
//  1. text/plain: which recipient, why, and which message (subject, date), in plain words;
//  2. message/delivery-status: Reporting-MTA "dns; tangle", Arrival-Date (the original Date), and for
//     the recipient Final-Recipient "rfc822; rcpt", Action "failed", Status, Diagnostic-Code
//     "X-Tanglemail; <reason>" and Last-Attempt-Date (now);
//  3. text/rfc822-headers: the original header, byte for byte.
//
// The bounce is From "Mail Delivery System" <postmaster>, To the original From, with In-Reply-To and
// References set to the original Message-ID so clients thread it, and Auto-Submitted: auto-replied
// (RFC 3834 §5) so that no client answers it automatically.
func Bounce(origHeader []byte, rcpt string, reason Reason, now time.Time, postmaster string) []byte {
	return dsn(origHeader, rcpt, reason, now, postmaster, time.Time{})
}

// Delayed is the reason of a delay notice for a recipient whose node has not sent a delivery receipt
// within waited: RFC 3463 4.4.7 (delivery time expired, persistent transient failure).
func Delayed(waited time.Duration) Reason {
	return Reason{Status: "4.4.7", Text: "no delivery receipt yet after " + humanDuration(waited)}
}

// DelayNotice builds the delivery status notification that tells the sender that rcpt has not
// acknowledged a message yet but still may until retryUntil (protocol.md §10.2, sender rule 3). It is
// Bounce's report with, for the recipient, Action "delayed" (RFC 3464 §2.3.3: delivery has not
// succeeded so far but is still being attempted), a 4.x.y Status (§2.3.4; anything else is sent as
// 4.0.0) and Will-Retry-Until retryUntil (§2.3.9, which is for DSNs of type "delayed"); its subject
// begins "Delayed:" and its text says that nothing needs doing and when the final answer comes.
func DelayNotice(origHeader []byte, rcpt string, reason Reason, now, retryUntil time.Time, postmaster string) []byte {
	if retryUntil.IsZero() {
		retryUntil = now
	}
	return dsn(origHeader, rcpt, reason, now, postmaster, retryUntil)
}

// dsn builds a failure report (retryUntil zero) or a delay report (RFC 3464 §2.3.3).
func dsn(origHeader []byte, rcpt string, reason Reason, now time.Time, postmaster string, retryUntil time.Time) []byte {
	delayed := !retryUntil.IsZero()
	if i := headerEndIndex(origHeader); i >= 0 {
		origHeader = origHeader[:i]
	}
	orig, _ := Parse(origHeader)
	if orig == nil {
		orig = &Message{}
	}
	status, class := reason.Status, byte('5')
	if delayed {
		class = '4'
	}
	if !statusRE.MatchString(status) || status[0] != class {
		status = string(class) + ".0.0"
	}
	text := strings.TrimSpace(oneLine(reason.Text))
	if text == "" {
		text = "the message could not be delivered"
	}
	rcpt = oneLine(rcpt)

	var h gomail.Header
	h.SetAddressList("From", []*gomail.Address{{Name: "Mail Delivery System", Address: postmaster}})
	if len(orig.From) > 0 {
		var to []*gomail.Address
		for _, m := range orig.From {
			to = append(to, &gomail.Address{Name: m.Name, Address: m.Address})
		}
		h.SetAddressList("To", to)
	}
	word := "Undelivered: "
	if delayed {
		word = "Delayed: "
	}
	subject := word + rcpt
	if orig.Subject != "" {
		subject = word + oneLine(orig.Subject)
	}
	h.SetSubject(subject)
	h.Set("Date", FormatDate(now))
	h.Set("Message-ID", "<"+NewMessageID()+">")
	if orig.MessageID != "" {
		h.Set("In-Reply-To", "<"+oneLine(orig.MessageID)+">")
		h.Set("References", "<"+oneLine(orig.MessageID)+">")
	}
	h.Set("Auto-Submitted", "auto-replied")
	h.SetContentType("multipart/report", map[string]string{"report-type": "delivery-status"})

	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		panic("mail: bounce: " + err.Error()) // only for a bad Content-Type, which is constant here
	}

	// 1. Human-readable explanation.
	var ph message.Header
	ph.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	ph.Set("Content-Transfer-Encoding", "quoted-printable")
	pw := mustPart(w, ph)
	var t strings.Builder
	switch {
	case delayed:
		fmt.Fprintf(&t, "Your message to %s has not been confirmed yet.\r\n\r\n", rcpt)
		fmt.Fprintf(&t, "Reason: %s.\r\n", strings.TrimSuffix(text, "."))
		fmt.Fprintf(&t, "\r\nThe recipient's node may be offline. If a storage node keeps its mail, the message\r\n"+
			"still reaches it when it comes back. Nothing needs doing: tanglemail keeps waiting for\r\n"+
			"the confirmation until %s and tells you only if none comes by then.\r\n",
			retryUntil.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	default:
		fmt.Fprintf(&t, "Your message could not be delivered to %s.\r\n\r\n", rcpt)
		fmt.Fprintf(&t, "Reason: %s.\r\n", strings.TrimSuffix(text, "."))
	}
	if status == "5.4.7" {
		t.WriteString("\r\nThe recipient's node did not confirm that it received the message. It may have\r\n" +
			"been offline the whole time. You can send the message again.\r\n")
	}
	t.WriteString("\r\nThe message:\r\n")
	if orig.Subject != "" {
		fmt.Fprintf(&t, "  Subject: %s\r\n", oneLine(orig.Subject))
	}
	if !orig.Date.IsZero() {
		fmt.Fprintf(&t, "  Date: %s\r\n", orig.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	if orig.MessageID != "" {
		fmt.Fprintf(&t, "  Message-ID: <%s>\r\n", oneLine(orig.MessageID))
	}
	t.WriteString("\r\nThe delivery report and the message's header are attached.\r\n")
	pw.Write([]byte(t.String()))
	pw.Close()

	// 2. Machine-readable delivery status (RFC 3464 §2.2, §2.3).
	var dh message.Header
	dh.SetContentType("message/delivery-status", nil)
	dh.Set("Content-Transfer-Encoding", "7bit")
	dw := mustPart(w, dh)
	var d strings.Builder
	fmt.Fprintf(&d, "Reporting-MTA: %s\r\n", ReportingMTA)
	if !orig.Date.IsZero() {
		fmt.Fprintf(&d, "Arrival-Date: %s\r\n", orig.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	d.WriteString("\r\n")
	fmt.Fprintf(&d, "Final-Recipient: rfc822; %s\r\n", ascii(rcpt))
	if delayed {
		d.WriteString("Action: delayed\r\n") // RFC 3464 §2.3.3
	} else {
		d.WriteString("Action: failed\r\n")
	}
	fmt.Fprintf(&d, "Status: %s\r\n", status)
	fmt.Fprintf(&d, "Diagnostic-Code: X-Tanglemail; %s\r\n", ascii(text))
	fmt.Fprintf(&d, "Last-Attempt-Date: %s\r\n", FormatDate(now))
	if delayed {
		fmt.Fprintf(&d, "Will-Retry-Until: %s\r\n", FormatDate(retryUntil)) // RFC 3464 §2.3.9
	}
	dw.Write([]byte(d.String()))
	dw.Close()

	// 3. The original header (RFC 6522 §4 allows the header alone).
	var oh message.Header
	oh.SetContentType("text/rfc822-headers", nil)
	if is7bit(origHeader) {
		oh.Set("Content-Transfer-Encoding", "7bit")
	} else {
		oh.Set("Content-Transfer-Encoding", "8bit")
	}
	ow := mustPart(w, oh)
	ow.Write(origHeader)
	ow.Close()

	w.Close()
	return buf.Bytes()
}

func mustPart(w *message.Writer, h message.Header) *message.Writer {
	pw, err := w.CreatePart(h)
	if err != nil {
		panic("mail: bounce: " + err.Error()) // only for a bad Content-Type, which is constant here
	}
	return pw
}

// headerEndIndex returns the length of raw's header including its last line ending (without the
// blank line), or -1 when raw is all header.
func headerEndIndex(raw []byte) int {
	_, end := headerBounds(raw)
	if end == len(raw) {
		return -1
	}
	return end
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}

func is7bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || c == 0 {
			return false
		}
	}
	return true
}
