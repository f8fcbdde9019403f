package browser_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/node"
	"github.com/tanglemail/tanglemail/internal/nodetest"
	"github.com/tanglemail/tanglemail/internal/web/ui"
)

// testNode is a running node and where the browser reaches its client.
type testNode struct {
	*node.Node
	name string
	addr string // tm1…@tangle
	url  string // the web client: http://127.0.0.1:<port>
}

// startNodes starts names as nodes of the development network on 127.0.0.1 (mDNS and the DHT off,
// real proof of work at DevNet's difficulty), each bootstrapping from all earlier ones, each with its
// own API listener and password, and waits until every node is peered with every other.
func startNodes(t *testing.T, names ...string) []*testNode {
	t.Helper()
	ns, _ := nodetest.StartDevnet(t, names...)
	var nodes []*testNode
	for i, n := range ns {
		tn := &testNode{Node: n, name: names[i], addr: n.Identity().Address().Mail()}
		tn.url = clientURL(t, tn)
		nodes = append(nodes, tn)
	}
	return nodes
}

// clientURL is where the browser opens n's web client: the node's own API listener, which must serve
// the client (internal/web/ui) at "/". A node that serves something else fails the test; the test then
// goes on through a loopback proxy that serves the embedded client and passes /api/ to the node, so
// that the rest of the flow is still checked.
func clientURL(t *testing.T, n *testNode) string {
	t.Helper()
	base := "http://" + n.APIAddr()
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatalf("%s: GET /: %v", n.name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`data-test="login-password"`)) {
		if csp := resp.Header.Get("Content-Security-Policy"); csp != clientCSP {
			t.Errorf("%s: the client is served with Content-Security-Policy %q, want %q", n.name, csp, clientCSP)
		}
		return base
	}
	t.Errorf("%s: GET / does not serve the web client (status %d): the node must pass ui.FS as web.Config.Client; going on through a proxy", n.name, resp.StatusCode)
	target, _ := url.Parse(base)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // the node compares Origin with Host
		},
		FlushInterval: -1, // the event stream
	}
	files := http.FileServerFS(ui.FS)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/api" {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Security-Policy", clientCSP)
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL
}

// apiCall sends a request to n's API with its password and decodes the JSON answer into out (if not
// nil). It returns the status.
func apiCall(t *testing.T, n *testNode, method, path string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+n.APIAddr()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.Password())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}
