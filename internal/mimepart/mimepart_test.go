package mimepart

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/mimepart/mimeparttest"
)

const mixed = "Subject: x\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=inner\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html\r\n" +
	"\r\n" +
	"<p>Hello</p>\r\n" +
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"\r\n" +
	"Subject: inner\r\n" +
	"\r\n" +
	"inner body\r\n" +
	"--outer--\r\n" +
	"epilogue\r\n"

func body(raw string, p *Part) string { return raw[p.BodyStart:p.BodyEnd] }

func TestParse(t *testing.T) {
	p := Parse([]byte(mixed))
	if p.MediaType() != "multipart/mixed" || len(p.Children) != 2 {
		t.Fatalf("root: %s with %d parts", p.MediaType(), len(p.Children))
	}
	alt := p.Children[0]
	if alt.MediaType() != "multipart/alternative" || len(alt.Children) != 2 {
		t.Fatalf("first: %s with %d parts", alt.MediaType(), len(alt.Children))
	}
	if got := body(mixed, alt.Children[0]); got != "Hello" {
		t.Errorf("text body %q", got)
	}
	if alt.Children[0].Params["charset"] != "utf-8" {
		t.Errorf("params %v", alt.Children[0].Params)
	}
	if got := body(mixed, alt.Children[1]); got != "<p>Hello</p>" {
		t.Errorf("html body %q", got)
	}
	msg := p.Children[1]
	if !msg.IsMessage() || msg.Message.Header.Get("Subject") != "inner" || body(mixed, msg.Message) != "inner body" {
		t.Errorf("message part: %+v", msg)
	}
	for path, want := range map[string]string{"1.1": "Hello", "1.2": "<p>Hello</p>", "2.1": "inner body"} {
		var nums []int
		for _, s := range strings.Split(path, ".") {
			var n int
			fmt.Sscan(s, &n)
			nums = append(nums, n)
		}
		if f := p.Find(nums); f == nil || body(mixed, f) != want {
			t.Errorf("Find(%s) = %+v, want body %q", path, f, want)
		}
	}
	if p.Find([]int{3}) != nil || p.Find([]int{1, 3}) != nil {
		t.Error("Find of a missing part")
	}
}

func TestParseBroken(t *testing.T) {
	for _, raw := range []string{
		"",
		"no header at all",
		"Content-Type: multipart/mixed\r\n\r\nno boundary",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nunclosed",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nsame boundary\r\n--b--\r\n",
		"Content-Type: message/rfc822\r\n\r\n",
		"Content-Type: ;;;\r\n\r\nx",
	} {
		p := Parse([]byte(raw))
		if p.BodyEnd > len(raw) || p.BodyStart > p.BodyEnd {
			t.Errorf("%q: offsets %+v", raw, p)
		}
		if p.IsMultipart() && len(p.Children) == 0 {
			t.Errorf("%q: multipart without parts", raw)
		}
	}
}

func TestParseBounds(t *testing.T) {
	raw := mimeparttest.Bomb(20000)
	start := time.Now()
	p := Parse(raw)
	took := time.Since(start)
	if d := p.Depth(); d != MaxDepth+1 {
		t.Errorf("depth %d, want %d", d, MaxDepth+1)
	}
	leaf := p
	for len(leaf.Children) > 0 {
		leaf = leaf.Children[0]
	}
	if !leaf.Opaque || leaf.MediaType() != "application/octet-stream" {
		t.Errorf("deepest part %s opaque=%v", leaf.MediaType(), leaf.Opaque)
	}
	if p.BodyEnd != len(raw) {
		t.Errorf("root ends at %d of %d", p.BodyEnd, len(raw))
	}
	t.Logf("%d bytes parsed in %v", len(raw), took)

	// Many parts: the parts beyond MaxParts are one opaque part.
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
	for i := 0; i < MaxParts+50; i++ {
		b.WriteString("--x\r\n\r\np\r\n")
	}
	b.WriteString("--x--\r\n")
	p = Parse([]byte(b.String()))
	if n := p.Count(); n > MaxParts+1 {
		t.Errorf("%d parts", n)
	}
	if last := p.Children[len(p.Children)-1]; !last.Opaque {
		t.Errorf("last part not opaque")
	}
}

// FuzzParse checks that Parse never panics, that offsets stay inside the message and ordered, and
// that the bounds hold.
func FuzzParse(f *testing.F) {
	f.Add([]byte(mixed))
	f.Add(mimeparttest.Bomb(150))
	f.Add([]byte("Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: x\r\n\r\ny\r\n--d--\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := Parse(raw)
		var check func(p *Part, depth int)
		check = func(p *Part, depth int) {
			if p.HeaderStart > p.BodyStart || p.BodyStart > p.BodyEnd || p.BodyEnd > len(raw) {
				t.Fatalf("offsets %d %d %d of %d", p.HeaderStart, p.BodyStart, p.BodyEnd, len(raw))
			}
			if depth > MaxDepth+1 {
				t.Fatalf("depth %d", depth)
			}
			for _, c := range p.Children {
				check(c, depth+1)
			}
			if p.Message != nil {
				check(p.Message, depth+1)
			}
		}
		check(p, 0)
		if n := p.Count(); n > MaxParts+MaxDepth+1 {
			t.Fatalf("%d parts", n)
		}
		for _, c := range []string{"", "base64", "quoted-printable"} {
			Decode(c, raw)
		}
	})
}
