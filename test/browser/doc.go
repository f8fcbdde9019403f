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
