package browser_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumFlags keep the browser headless, sandbox-free (CI runs as root in a container) and off the
// network: no background requests, component updates, sync, extensions or field trials.
var chromiumFlags = []chromedp.ExecAllocatorOption{
	chromedp.NoFirstRun,
	chromedp.NoDefaultBrowserCheck,
	chromedp.Headless,
	chromedp.NoSandbox,
	chromedp.DisableGPU,
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-dev-shm-usage", true),
	chromedp.Flag("disable-extensions", true),
	chromedp.Flag("disable-sync", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-default-apps", true),
	chromedp.Flag("mute-audio", true),
	chromedp.Flag("disable-breakpad", true),
	chromedp.Flag("disable-client-side-phishing-detection", true),
	chromedp.Flag("disable-domain-reliability", true),
	chromedp.Flag("disable-field-trial-config", true),
	chromedp.Flag("disable-hang-monitor", true),
	chromedp.Flag("disable-popup-blocking", true),
	chromedp.Flag("disable-prompt-on-repost", true),
	chromedp.Flag("disable-background-timer-throttling", true),
	chromedp.Flag("disable-backgrounding-occluded-windows", true),
	chromedp.Flag("disable-renderer-backgrounding", true),
	chromedp.Flag("metrics-recording-only", true),
	chromedp.Flag("no-pings", true),
	chromedp.Flag("safebrowsing-disable-auto-update", true),
	chromedp.Flag("password-store", "basic"),
	chromedp.Flag("use-mock-keychain", true),
	chromedp.Flag("force-color-profile", "srgb"),
	// Sandboxed iframes stay in the page's process, so the test can inspect the mail frame's document.
	chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,IsolateSandboxedIframes,HttpsUpgrades"),
	// Every host name resolves nowhere, so nothing but the literal 127.0.0.1 URLs of the test is reached.
	chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	chromedp.Flag("proxy-server", "direct://"),
	chromedp.Flag("proxy-bypass-list", "*"),
	chromedp.WindowSize(1280, 900),
}

// findChromium returns the browser binary: $CHROMIUM, else chromium, chromium-browser or google-chrome
// on PATH. Missing, it fails the test under CI (which installs Debian's chromium: .ci/run's PKGS) and
// skips it elsewhere.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
		t.Fatalf("$CHROMIUM=%s is not an executable", p)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is not installed, and CI must run the browser tests: add the Debian package chromium to PKGS in .ci/run, or set $CHROMIUM")
	}
	t.Skip("Chromium is not installed (apt-get install --no-install-recommends chromium, or set $CHROMIUM)")
	return ""
}

// browser is one headless Chromium process for a test. Each tab it opens has its own browser context
// (cookie jar, storage), so two tabs can be two users.
type browser struct {
	t     *testing.T
	root  context.Context
	mu    sync.Mutex
	tabs  []*tab
	saved bool
}

// newBrowser starts Chromium; it stops when the test ends, after failure artifacts are saved.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := findChromium(t)
	opts := append([]chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.UserDataDir(t.TempDir())}, chromiumFlags...)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(alloc)
	start, cancelStart := context.WithTimeout(root, 30*time.Second)
	defer cancelStart()
	// The first Run starts the browser; it must not use a context with a deadline (that would end the
	// browser with it), so it runs on root and a watchdog cancels a start that hangs.
	stop := context.AfterFunc(start, func() {
		if errors.Is(start.Err(), context.DeadlineExceeded) {
			cancelRoot()
		}
	})
	err := chromedp.Do(root)
	stop()
	if err != nil {
		cancelRoot()
		cancelAlloc()
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	b := &browser{t: t, root: root}
	t.Cleanup(func() {
		b.saveArtifacts() // while the tabs are still open
		b.mu.Lock()
		for _, tb := range b.tabs {
			tb.cancel()
		}
		b.mu.Unlock()
		cancelRoot()
		cancelAlloc()
	})
	return b
}

// tab is one page in its own browser context, with the console messages it logged.
type tab struct {
	b      *browser
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	console []consoleEntry
}

type consoleEntry struct {
	Type   string
	Source string
	Text   string
	URL    string
}

func (e consoleEntry) String() string {
	s := e.Type
	if e.Source != "" {
		s += "/" + e.Source
	}
	return fmt.Sprintf("[%s] %s (%s)", s, e.Text, e.URL)
}

// newTab opens a tab in a fresh browser context (its own cookies) with a viewport of w×h.
func (b *browser) newTab(name string, w, h int64) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	tb := &tab{b: b, t: b.t, name: name, ctx: ctx, cancel: cancel}
	if err := chromedp.Listen(ctx, tb.onEvent); err != nil {
		cancel()
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		cancel()
		b.t.Fatalf("tab %s: viewport: %v", name, err)
	}
	b.mu.Lock()
	b.tabs = append(b.tabs, tb)
	b.mu.Unlock()
	return tb
}

// onEvent records console calls, uncaught exceptions and browser log entries (CSP reports among them).
// It runs on chromedp's reader goroutine: it only appends under the lock.
func (tb *tab) onEvent(ev any) {
	var e consoleEntry
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			if a.Value != nil {
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			} else {
				parts = append(parts, a.Description)
			}
		}
		e = consoleEntry{Type: string(ev.Type), Source: "console-api", Text: strings.Join(parts, " ")}
		if ev.StackTrace != nil && len(ev.StackTrace.CallFrames) > 0 {
			e.URL = ev.StackTrace.CallFrames[0].URL
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		e = consoleEntry{Type: "exception", Text: text, URL: d.URL}
	case *log.EventEntryAdded:
		e = consoleEntry{Type: string(ev.Entry.Level), Source: string(ev.Entry.Source), Text: ev.Entry.Text, URL: ev.Entry.URL}
	default:
		return
	}
	tb.mu.Lock()
	tb.console = append(tb.console, e)
	tb.mu.Unlock()
}

// consoleLog returns what the tab logged so far.
func (tb *tab) consoleLog() []consoleEntry {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]consoleEntry(nil), tb.console...)
}

// run runs actions with a deadline; a failure fails the test (artifacts are saved at cleanup).
func (tb *tab) run(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := tb.try(d, actions...); err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// try runs actions with a deadline and returns the error.
func (tb *tab) try(d time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(tb.ctx, d)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// eval evaluates a JavaScript expression in the page and returns its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s: evaluate %q: %v", tb.name, expr, err)
	}
	return v
}

// waitJS waits until the JavaScript expression is truthy in the page, failing the test after d.
func (tb *tab) waitJS(what string, d time.Duration, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d+5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")", chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		tb.t.Fatalf("%s: waiting %v for %s: %v", tb.name, d, what, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		tb.t.Logf("%s: %s took %v", tb.name, what, took.Round(100*time.Millisecond))
	}
}

// mailFrameID returns the frame id of the mail's iframe (data-test mail-html-frame).
func (tb *tab) mailFrameID() cdp.FrameID {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(sel("mail-html-frame"))))
	if err != nil || len(nodes) == 0 || nodes[0].FrameID == "" {
		tb.t.Fatalf("%s: the mail frame: %v", tb.name, err)
	}
	return nodes[0].FrameID
}

// evalInFrame evaluates expr, which gives a string, in an isolated world of frame: it sees the frame's
// DOM (not its scripts' globals), and runs even where the frame's sandbox blocks the page's scripts.
func (tb *tab) evalInFrame(frame cdp.FrameID, expr string) (string, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (string, error) {
		w, err := cdp.Call(ctx, t, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: frame, WorldName: "tanglemail-test"})
		if err != nil {
			return "", err
		}
		yes := true
		res, err := cdp.Call(ctx, t, runtime.Evaluate, runtime.EvaluateParams{Expression: expr, ContextID: w.ExecutionContextID, ReturnByValue: &yes})
		if err != nil {
			return "", err
		}
		if res.ExceptionDetails != nil {
			return "", fmt.Errorf("evaluate in frame: %s", res.ExceptionDetails.Text)
		}
		var out string
		if res.Result == nil || json.Unmarshal([]byte(res.Result.Value), &out) != nil {
			return "", fmt.Errorf("evaluate in frame: not a string")
		}
		return out, nil
	})
}

// waitInFrame waits until expr (a string expression) gives "true" in frame, failing the test after d.
func (tb *tab) waitInFrame(what string, d time.Duration, frame cdp.FrameID, expr string) {
	tb.t.Helper()
	deadline := time.Now().Add(d)
	for {
		v, err := tb.evalInFrame(frame, "String(!!("+expr+"))")
		if err == nil && v == "true" {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: waiting %v in the frame for %s: %v (last: %q)", tb.name, d, what, err, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clickJS waits until the JavaScript expression gives an element and clicks it in the same turn of
// the page's event loop. Lists that the client re-renders on live events (conversations, messages) are
// clicked this way: a DevTools click finds the node first and may find it replaced by then.
func (tb *tab) clickJS(what string, d time.Duration, elementExpr string) {
	tb.t.Helper()
	tb.waitJS(what, d, `(() => { const el = `+elementExpr+`; if (!el) return false; el.click(); return true; })()`)
}

// sel is the CSS selector of a data-test hook, with an optional suffix ("[data-id=…]", " .x").
func sel(hook string, suffix ...string) string {
	return `[data-test="` + hook + `"]` + strings.Join(suffix, "")
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\u2028", `\u2028`, "\u2029", `\u2029`, "<", `\x3c`)
	return `"` + r.Replace(s) + `"`
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// artifactDir is where a failed test's screenshots, HTML and console logs go:
// $TANGLEMAIL_BROWSER_ARTIFACTS/<test>, else <os.TempDir()>/test/browser/artifacts-<test>. It outlives
// the test (it is not a t.TempDir).
func artifactDir(t *testing.T) string {
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	if d := os.Getenv("TANGLEMAIL_BROWSER_ARTIFACTS"); d != "" {
		return filepath.Join(d, name)
	}
	return filepath.Join(os.TempDir(), "test", "browser", "artifacts-"+name)
}

// saveArtifacts saves, when the test failed, a full-page screenshot, the HTML and the console log of
// every tab.
func (b *browser) saveArtifacts() {
	if !b.t.Failed() || b.saved {
		return
	}
	b.saved = true
	dir := artifactDir(b.t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("browser artifacts: %v", err)
		return
	}
	b.mu.Lock()
	tabs := append([]*tab(nil), b.tabs...)
	b.mu.Unlock()
	for _, tb := range tabs {
		base := filepath.Join(dir, unsafeName.ReplaceAllString(tb.name, "_"))
		ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(base+".png", png, 0o644)
		} else {
			b.t.Logf("browser artifacts: %s: screenshot: %v", tb.name, err)
		}
		if html, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.documentElement.outerHTML")); err == nil {
			_ = os.WriteFile(base+".html", []byte(html), 0o644)
		}
		cancel()
		var sb strings.Builder
		for _, e := range tb.consoleLog() {
			sb.WriteString(e.String() + "\n")
		}
		_ = os.WriteFile(base+".console.txt", []byte(sb.String()), 0o644)
	}
	b.t.Logf("browser artifacts (screenshot, HTML, console log per tab) in %s", dir)
}
