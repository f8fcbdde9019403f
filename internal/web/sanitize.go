package web

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/microcosm-cc/bluemonday"
	"golang.org/x/net/html"
)

// The mail HTML policy. It is an allowlist built from nothing (not bluemonday's UGC policy, which
// allows remote images):
//   - elements: text structure, lists, tables, quotes and inline formatting only; no script, style,
//     link, meta, base, form, input, button, iframe, frame, object, embed, svg, math, video, audio,
//     source, picture or template. The content of script, style, title, iframe, object, noscript and
//     the like is dropped with the element;
//   - attributes: no event handlers (on*), no id, class, name, srcset, background, action, formaction
//     or any other URL attribute except a.href and img.src; a few presentational attributes (align,
//     width, bgcolor, …) with values matched by pattern;
//   - a.href: only http: and https: URLs with a host, and mailto: URLs, that parse; every link gets
//     rel="noopener noreferrer" and target="_blank" (set after the policy ran, replacing whatever the
//     mail had);
//   - img.src: only data:image/(png|gif|jpeg|webp);base64 URLs (bluemonday checks the base64), so no
//     image is ever fetched; an img left without a src is dropped (after the policy ran);
//   - style attributes: only typographic and box properties whose values bluemonday's CSS handlers
//     accept (colours, lengths, keywords), so no url(), image(), expression() or @import can pass.
//
// The answer's Content-Security-Policy (htmlCSP) is the second wall: even markup that slipped through
// could neither run nor fetch anything.
var (
	policyOnce sync.Once
	policy     *bluemonday.Policy
)

var (
	reLinkURL   = regexp.MustCompile(`(?i)^(https?://|mailto:)`)
	reImageData = regexp.MustCompile(`(?i)^data:image/(png|gif|jpeg|jpg|webp);base64,[a-z0-9+/=\s]+$`)
	reNumber    = regexp.MustCompile(`^[0-9]{1,4}%?$`)
	reAlign     = regexp.MustCompile(`(?i)^(left|right|center|justify)$`)
	reVAlign    = regexp.MustCompile(`(?i)^(top|middle|bottom|baseline)$`)
	reColor     = regexp.MustCompile(`(?i)^(#[0-9a-f]{3,8}|[a-z]{3,20})$`)
	reFontFace  = regexp.MustCompile(`^[A-Za-z0-9 ,'"-]{1,100}$`)
	reFontSize  = regexp.MustCompile(`^[+-]?[1-7]$`)
	reDir       = regexp.MustCompile(`(?i)^(ltr|rtl|auto)$`)
	reLang      = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)
	reListType  = regexp.MustCompile(`^(1|a|A|i|I|disc|circle|square)$`)
)

func mailPolicy() *bluemonday.Policy {
	policyOnce.Do(func() {
		p := bluemonday.NewPolicy()
		p.AllowElements("p", "br", "div", "span", "hr", "h1", "h2", "h3", "h4", "h5", "h6",
			"b", "strong", "i", "em", "u", "s", "strike", "del", "ins", "mark", "small", "big", "sub", "sup",
			"tt", "code", "kbd", "samp", "var", "pre", "blockquote", "q", "cite", "abbr", "dfn", "address",
			"center", "font", "ul", "ol", "li", "dl", "dt", "dd",
			"table", "caption", "thead", "tbody", "tfoot", "tr", "td", "th", "colgroup", "col",
			"figure", "figcaption", "details", "summary", "wbr", "section", "article", "header", "footer",
			"main", "nav", "aside")

		p.AllowAttrs("href").Matching(reLinkURL).OnElements("a")
		p.AllowURLSchemes("http", "https", "mailto")
		p.RequireParseableURLs(true)
		p.AllowRelativeURLs(false)

		p.AllowDataURIImages()
		p.AllowAttrs("src").Matching(reImageData).OnElements("img")
		p.AllowAttrs("alt").OnElements("img")
		p.AllowAttrs("width", "height").Matching(reNumber).OnElements("img", "table", "td", "th", "col", "colgroup")

		p.AllowAttrs("title").Globally()
		p.AllowAttrs("dir").Matching(reDir).Globally()
		p.AllowAttrs("lang").Matching(reLang).Globally()
		p.AllowAttrs("align").Matching(reAlign).OnElements("p", "div", "h1", "h2", "h3", "h4", "h5", "h6",
			"table", "tr", "td", "th", "caption", "img", "hr", "col", "colgroup", "thead", "tbody", "tfoot")
		p.AllowAttrs("valign").Matching(reVAlign).OnElements("tr", "td", "th", "col", "colgroup", "thead", "tbody", "tfoot")
		p.AllowAttrs("bgcolor").Matching(reColor).OnElements("table", "tr", "td", "th")
		p.AllowAttrs("border", "cellpadding", "cellspacing").Matching(reNumber).OnElements("table")
		p.AllowAttrs("colspan", "rowspan").Matching(reNumber).OnElements("td", "th")
		p.AllowAttrs("span").Matching(reNumber).OnElements("col", "colgroup")
		p.AllowAttrs("color").Matching(reColor).OnElements("font")
		p.AllowAttrs("face").Matching(reFontFace).OnElements("font")
		p.AllowAttrs("size").Matching(reFontSize).OnElements("font")
		p.AllowAttrs("type").Matching(reListType).OnElements("ol", "ul", "li")
		p.AllowAttrs("start", "value").Matching(reNumber).OnElements("ol", "li")
		p.AllowAttrs("open").Matching(regexp.MustCompile(`^(|open)$`)).OnElements("details")

		p.AllowStyles("color", "background-color",
			"font-family", "font-size", "font-style", "font-weight", "font-variant",
			"text-align", "text-decoration", "text-indent", "text-transform", "line-height", "letter-spacing",
			"word-spacing", "white-space", "vertical-align", "direction",
			"margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
			"padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
			"border", "border-top", "border-right", "border-bottom", "border-left",
			"border-color", "border-style", "border-width", "border-collapse", "border-spacing", "border-radius",
			"width", "height", "max-width", "min-width", "max-height", "min-height",
			"display", "list-style-type", "table-layout").Globally()

		p.SkipElementsContent("head", "script", "style", "title", "iframe", "frame", "frameset", "object",
			"embed", "applet", "noscript", "noembed", "noframes", "template", "svg", "math", "select",
			"textarea", "button", "audio", "video", "canvas", "map")
		p.AddSpaceWhenStrippingTag(true)
		policy = p
	})
	return policy
}

// SanitizeHTML makes a message's HTML safe to show: the mail policy (see above), then every link gets
// rel="noopener noreferrer" and target="_blank", and an img left without a src is dropped. The result
// is an HTML fragment.
func SanitizeHTML(s string) string {
	return finish(mailPolicy().Sanitize(s))
}

// finish sets rel and target on every a element of already-sanitized HTML and drops img elements
// without a src. It re-serializes the tokens it changes only: the rest is copied as it is.
func finish(s string) string {
	if !strings.Contains(s, "<a ") && !strings.Contains(s, "<img") {
		return s
	}
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return b.String()
		}
		raw := z.Raw()
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			b.Write(raw)
			continue
		}
		t := z.Token()
		switch t.Data {
		case "a":
			attrs := t.Attr[:0]
			link := false
			for _, a := range t.Attr {
				switch {
				case a.Key == "rel" || a.Key == "target":
				case a.Key == "href" && !linkURL(a.Val):
				default:
					link = link || a.Key == "href"
					attrs = append(attrs, a)
				}
			}
			if link {
				attrs = append(attrs, html.Attribute{Key: "rel", Val: "noopener noreferrer"},
					html.Attribute{Key: "target", Val: "_blank"})
			}
			t.Attr = attrs
			b.WriteString(t.String())
		case "img":
			if slices.ContainsFunc(t.Attr, func(a html.Attribute) bool { return a.Key == "src" }) {
				b.WriteString(t.String())
			}
		default:
			b.Write(raw)
		}
	}
}

// linkURL reports whether a (sanitized) href is an absolute http or https URL with a host, or a
// mailto URL with an address.
func linkURL(v string) bool {
	u, err := url.Parse(v)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return u.Host != ""
	case "mailto":
		return u.Opaque != ""
	}
	return false
}

// htmlToText makes plain text of a message's HTML, for the text of a message that has no text/plain
// part and for previews: the text of the document without head, script, style and the like, a line
// break for each block and br, "- " for list items, and link targets in angle brackets.
func htmlToText(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	skip := 0 // depth inside elements whose text is not shown
	pre := 0
	href, linkStart := "", 0 // the open link's target, and where its text starts
	newline := func() {
		str := b.String()
		if len(str) > 0 && !strings.HasSuffix(str, "\n") {
			b.WriteByte('\n')
		}
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return tidyText(b.String())
		case html.TextToken:
			if skip > 0 {
				continue
			}
			t := string(z.Text())
			if pre == 0 {
				t = strings.Join(strings.Fields(t), " ")
				if t == "" {
					continue
				}
				str := b.String()
				if len(str) > 0 && !strings.HasSuffix(str, "\n") && !strings.HasSuffix(str, " ") {
					b.WriteByte(' ')
				}
			}
			b.WriteString(t)
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			start := tt != html.EndTagToken
			switch tag {
			case "head", "script", "style", "title", "template", "noscript", "svg", "math", "iframe", "object":
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
			case "pre":
				if tt == html.StartTagToken {
					pre++
				} else if tt == html.EndTagToken && pre > 0 {
					pre--
				}
				newline()
			case "br":
				b.WriteByte('\n')
			case "li":
				if start {
					newline()
					b.WriteString("- ")
				}
			case "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "ul", "ol", "blockquote",
				"hr", "section", "article", "header", "footer", "dt", "dd", "address", "center":
				newline()
			case "a":
				if tt == html.StartTagToken {
					href, linkStart = "", b.Len()
					for hasAttr {
						k, v, more := z.TagAttr()
						if string(k) == "href" {
							href = strings.TrimSpace(string(v))
						}
						hasAttr = more
					}
				} else if tt == html.EndTagToken && skip == 0 {
					lower := strings.ToLower(href)
					text := strings.TrimSpace(b.String()[min(linkStart, b.Len()):])
					if (strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://")) && text != href {
						b.WriteString(" <" + href + ">")
					}
					href = ""
				}
			}
		}
	}
}

// tidyText trims trailing spaces of lines and collapses runs of more than one blank line.
func tidyText(s string) string {
	lines := strings.Split(s, "\n")
	var out []string
	blank := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " \t")
		if l == "" {
			blank++
			if blank > 1 || len(out) == 0 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}
