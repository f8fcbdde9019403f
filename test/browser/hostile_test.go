package browser_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tanglemail/tanglemail/internal/store"
)

// canary is an HTTP server on 127.0.0.1 that counts every request: any hit means the mail's HTML
// reached the network.
type canary struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []string // paths
}

func newCanary(t *testing.T) *canary {
	c := &canary{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits = append(c.hits, r.Method+" "+r.URL.Path)
		c.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("canary"))
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *canary) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.hits...)
}

// hostileHTML tries every way we know for mail HTML to run a script, leave a mark, or fetch something.
// CANARY stands for the canary's URL.
const hostileHTML = `<!DOCTYPE html>
<html><head>
<meta http-equiv="refresh" content="0;url=CANARY/meta-refresh">
<meta http-equiv="Content-Security-Policy" content="default-src *">
<base href="CANARY/base/">
<link rel="stylesheet" href="CANARY/stylesheet">
<link rel="prefetch" href="CANARY/prefetch">
<link rel="preload" as="image" href="CANARY/preload">
<link rel="icon" href="CANARY/icon">
<style>
@import url("CANARY/import");
body { background: url("CANARY/css-background"); }
@font-face { font-family: x; src: url("CANARY/font"); }
p { font-family: x; }
</style>
<script>document.title = 'PWNED'; try { window.top.pwned = 'script'; } catch (e) {} fetch('CANARY/fetch'); console.log('PWNED script');</script>
<script src="CANARY/script.js"></script>
</head>
<body onload="window.top.pwned = 'onload'; fetch('CANARY/onload')" data-x="1">
<p>Hello from the hostile mail</p>
<img src="CANARY/img" alt="remote">
<img src="x-missing" onerror="window.top.pwned = 'onerror'; new Image().src = 'CANARY/onerror'">
<img srcset="CANARY/srcset 1x">
<picture><source srcset="CANARY/picture-source"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></picture>
<video poster="CANARY/poster" src="CANARY/video" autoplay></video>
<audio src="CANARY/audio" autoplay></audio>
<input type="image" src="CANARY/input-image">
<table background="CANARY/table-background"><tr><td>cell</td></tr></table>
<form action="CANARY/form" method="post" id="f"><input name="a" autofocus onfocus="document.getElementById('f').submit()"><button>send</button></form>
<form action="CANARY/form2"><button formaction="CANARY/formaction" autofocus>x</button></form>
<iframe src="CANARY/iframe"></iframe>
<iframe srcdoc="<script>window.top.pwned = 'srcdoc'</script><img src='CANARY/srcdoc-img'>"></iframe>
<object data="CANARY/object"></object>
<embed src="CANARY/embed">
<a href="javascript:window.top.pwned = 'javascript-link'" id="jslink">click me</a>
<a href="CANARY/ping-target" ping="CANARY/ping">a link</a>
<div style="background-image: url('CANARY/inline-style')">styled</div>
<svg xmlns="http://www.w3.org/2000/svg"><image href="CANARY/svg-image" width="10" height="10"/><script>window.top.pwned = 'svg'</script><a href="javascript:window.top.pwned='svg-link'"><text y="20">svg link</text></a></svg>
<math><mtext><table><mglyph><style><img src="x-missing" onerror="window.top.pwned = 'mxss'"></style></mglyph></table></mtext></math>
<details open ontoggle="window.top.pwned = 'ontoggle'; fetch('CANARY/ontoggle')"><summary>details</summary>x</details>
<noscript><img src="CANARY/noscript"></noscript>
<div onmouseover="window.top.pwned = 'mouseover'" style="position:fixed;inset:0">hover</div>
</body></html>
`

// TestHostileHTML delivers a mail whose HTML attacks in every way we know, opens it in the client's
// formatted view and checks that nothing ran and nothing was fetched: the node's sanitizer, the HTML's
// CSP and the client's <iframe sandbox> each stop it.
func TestHostileHTML(t *testing.T) {
	c := newCanary(t)
	n := startNodes(t, "alice")[0]
	html := strings.ReplaceAll(hostileHTML, "CANARY", c.srv.URL)
	raw := "From: Mallory <tm1mallory@tangle>\r\nTo: " + n.addr + "\r\nSubject: Hostile HTML\r\nDate: " + time.Now().Format(time.RFC1123Z) +
		"\r\nMessage-ID: <hostile@test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe plain part.\r\n" +
		"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + strings.ReplaceAll(html, "\n", "\r\n") + "\r\n--b--\r\n"
	ctx := context.Background()
	inbox, err := n.Mailboxes().MailboxByRole(ctx, store.RoleInbox)
	if err != nil {
		t.Fatal(err)
	}
	a, err := n.Mailboxes().Append(ctx, store.NewMessage{MailboxID: inbox.ID, Raw: []byte(raw)})
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t)
	tb := b.newTab("alice", 1280, 900)
	tb.signIn(n.url, n.Password(), true)
	tb.run("open mail", 20*time.Second, chromedp.Click(sel("nav-mail")), chromedp.WaitVisible(sel("mail-row")))
	tb.clickJS("open the hostile mail", 10*time.Second, `document.querySelector('[data-test="mail-row"] a')`)
	tb.run("the hostile mail", 20*time.Second,
		chromedp.WaitVisible(sel("mail-body")),
		chromedp.WaitVisible(sel("mail-show-html")),
	)
	if got := eval[string](tb, `document.querySelector('[data-test="mail-body"]').textContent`); !strings.Contains(got, "The plain part.") {
		t.Errorf("plain view shows %q, want the plain part", got)
	}
	startURL := eval[string](tb, `location.href`)

	// The formatted view: the frame must load (its own load event), sandboxed, with the node's HTML.
	tb.run("show formatted", 10*time.Second, chromedp.Click(sel("mail-show-html")), chromedp.WaitVisible(sel("mail-html-frame")))
	frame := eval[map[string]string](tb, `(() => { const f = document.querySelector('[data-test="mail-html-frame"]'); return {sandbox: f.getAttribute('sandbox'), src: f.getAttribute('src')}; })()`)
	if frame["sandbox"] != "allow-popups allow-popups-to-escape-sandbox" {
		t.Errorf("mail frame sandbox=%q, want only popups (links in a new tab): no allow-scripts, no allow-same-origin", frame["sandbox"])
	}
	if want := "/api/folders/" + itoa(int64(inbox.ID)) + "/messages/" + itoa(int64(a.UID)) + "/html"; frame["src"] != want {
		t.Errorf("mail frame src=%q, want %q", frame["src"], want)
	}
	frameID := tb.mailFrameID()
	tb.waitInFrame("the frame's document to load with the mail's text", 15*time.Second, frameID,
		`document.readyState === 'complete' && location.pathname.endsWith('/html') && document.body.textContent.includes('Hello from the hostile mail')`)

	// Give late attempts (meta refresh, autofocus, load handlers, media) their chance: the canary must
	// stay silent for a while after the load.
	quiet := time.Now().Add(2 * time.Second)
	for time.Now().Before(quiet) {
		if hits := c.seen(); len(hits) > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if hits := c.seen(); len(hits) > 0 {
		t.Errorf("the canary was hit %d times: %v", len(hits), hits)
	}

	// No marker in the page.
	top := eval[map[string]any](tb, `({pwned: String(window.pwned), title: document.title, href: location.href})`)
	if top["pwned"] != "undefined" || top["title"] != "tanglemail" || top["href"] != startURL {
		t.Errorf("the page was touched: %v (want pwned undefined, title tanglemail, href %s)", top, startURL)
	}
	// No marker in the frame, which still shows the node's document.
	inFrame, err := tb.evalInFrame(frameID, `JSON.stringify({title: document.title, href: location.href, bodyAttrs: [...document.body.attributes].map(a => a.name), scripts: document.scripts.length, handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes].filter(a => /^on/i.test(a.name)).map(a => a.name)), js: [...document.querySelectorAll('[href],[src],[action],[formaction]')].map(e => e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action') || e.getAttribute('formaction')).filter(u => /^\s*(javascript|vbscript|data:text)/i.test(u)), remote: [...document.querySelectorAll('img,video,audio,source,iframe,object,embed,link,script,input')].map(e => e.getAttribute('src') || e.getAttribute('data') || e.getAttribute('href') || '').filter(u => /^https?:/i.test(u))})`)
	if err != nil {
		t.Fatalf("inspect the frame: %v", err)
	}
	if strings.Contains(inFrame, "PWNED") {
		t.Errorf("a marker is set in the frame: %s", inFrame)
	}
	if !strings.Contains(inFrame, `"scripts":0`) || !strings.Contains(inFrame, `"handlers":[]`) || !strings.Contains(inFrame, `"js":[]`) || !strings.Contains(inFrame, `"remote":[]`) {
		t.Errorf("the sanitized document still holds active or remote content: %s", inFrame)
	}
	if !strings.Contains(inFrame, `/html"`) {
		t.Errorf("the frame navigated away from the node's HTML: %s", inFrame)
	}

	// The console: blocked-content reports are fine; anything a script could have written, or an
	// exception, is not.
	blocked := regexp.MustCompile(`(?i)content security policy|content-security-policy|sandbox|blocked|refused`)
	for _, e := range tb.consoleLog() {
		switch {
		case e.Type == "exception", e.Source == "console-api":
			t.Errorf("script output in the console: %s", e)
		case e.Source == "network" && strings.Contains(e.URL, "/api/me") && strings.Contains(e.Text, "401"):
			// the sign-in page asking whether a session exists
		case (e.Type == "error" || e.Type == "warning") && !blocked.MatchString(e.Text):
			t.Errorf("unexpected console %s", e)
		}
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
