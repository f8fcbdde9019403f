// Package browser holds browser tests of the web client (internal/web/ui): headless Chromium, driven
// from Go through the DevTools protocol with github.com/chromedp/chromedp, signs in and clicks through
// the client the way a person would. Everything runs on 127.0.0.1: the nodes (internal/node, started in
// the test process on the development network, peered with each other, mDNS and the DHT off, real
// proof of work), their API listeners, and the browser, which is started with its background
// networking, component updates, sync and extensions off and with every host name resolving nowhere.
//
// What is covered:
//   - TestClientAgainstStub: the client alone, against an in-memory stand-in of the API (stub_test.go)
//     served with the node's Content-Security-Policy: sign-in (a wrong password shows the API's
//     error), contacts and the QR code, a 1:1 chat with live typing notices, incoming messages, read
//     marks and delivery ticks, mail with the sandboxed HTML view, compose with contact autocomplete
//     and the proof-of-work bar, and the phone layout (one column, the nav bar at the bottom, tap
//     targets of at least 40 px). The page must log no error: a CSP violation is one.
//   - TestChatFlow: three nodes, alice, bob and carol, each with its own API and password. alice and
//     bob sign in in two browser contexts (separate cookie jars), add each other as contacts by
//     petname, open a 1:1 chat and exchange messages that appear on the other side without a reload;
//     the sender sees delivered, then read. alice creates a group with bob and carol; her message in
//     it reaches bob's page and carol (a third context). alice sends a mail through the compose form;
//     bob finds it in INBOX and reads it.
//   - TestHostileHTML: a mail whose HTML tries everything (scripts, event handlers, javascript: links,
//     forms with autofocus, iframes, stylesheets, CSS url(), meta refresh, remote images) against a
//     canary HTTP server on 127.0.0.1 is opened in the client's formatted view. The canary must see no
//     request, no marker may be set in the page or the frame, and the console may show nothing but
//     blocked-content reports.
//
// The tests wait on conditions in the page (chromedp's WaitVisible and Poll) with deadlines, never on
// bare sleeps.
//
// Chromium is found through $CHROMIUM, else chromium, chromium-browser or google-chrome on PATH.
// Without it the tests skip, or fail when CI is set (CI must run them: .ci/run installs Debian's
// chromium). When a test fails, a full-page screenshot, the page's HTML and its console log, per tab,
// go to $TANGLEMAIL_BROWSER_ARTIFACTS/<test>, else to <os.TempDir()>/test/browser/artifacts-<test>;
// the test log names the directory.
//
//	go test -race ./test/browser
package browser
