package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/version"
)

// nodeAPI is a client of a node's HTTP API (docs/api.md), authenticated with the node's password.
type nodeAPI struct {
	tb       testing.TB
	base     string
	password string
}

func apiOf(tb testing.TB, n *Node) *nodeAPI {
	return &nodeAPI{tb: tb, base: "http://" + n.APIAddr(), password: n.Password()}
}

// call sends a JSON request and decodes the JSON answer into out (if non-nil); it fails the test on a
// status other than want.
func (a *nodeAPI) call(method, path string, body, out any, want int) {
	a.tb.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		a.tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.tb.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		a.tb.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			a.tb.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data json.RawMessage
}

// events opens the node's event stream (GET /api/events) and delivers its events until ctx ends.
func (a *nodeAPI) events(ctx context.Context) <-chan sseEvent {
	a.tb.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+"/api/events", nil)
	if err != nil {
		a.tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		a.tb.Fatalf("GET /api/events: %s", resp.Status)
	}
	out := make(chan sseEvent, 1024)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" {
					select {
					case out <- e:
					case <-ctx.Done():
						return
					}
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "event:"):
				e.name = strings.TrimSpace(line[6:])
			case strings.HasPrefix(line, "data:"):
				e.data = append(e.data, strings.TrimSpace(line[5:])...)
			}
		}
	}()
	return out
}

type chatEvent struct {
	Conversation string `json:"conversation"`
	Message      struct {
		ID     string `json:"id"`
		Text   string `json:"text"`
		Mine   bool   `json:"mine"`
		Status string `json:"status"`
		Kind   string `json:"kind"`
	} `json:"message"`
}

// waitChat reads events until a `name` event whose message matches, failing after d.
func waitChat(tb testing.TB, ch <-chan sseEvent, name string, d time.Duration, match func(chatEvent) bool) chatEvent {
	tb.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				tb.Fatalf("event stream ended while waiting for %s", name)
			}
			if e.name != name {
				continue
			}
			var ce chatEvent
			if err := json.Unmarshal(e.data, &ce); err != nil {
				tb.Fatalf("%s event %s: %v", name, e.data, err)
			}
			if match(ce) {
				return ce
			}
		case <-timer.C:
			tb.Fatalf("no matching %s event within %v", name, d)
		}
	}
}

// startDevnet starts n loopback nodes on net, each bootstrapped to the ones before it (at most three),
// and waits until every node has a peer.
func startDevnet(tb testing.TB, params tangle.Params, n int) []*Node {
	tb.Helper()
	var nodes []*Node
	for i := range n {
		cfg := testConfig(tb, tb.TempDir())
		cfg.Network = params
		for j := max(0, i-3); j < i; j++ {
			cfg.Bootstrap = append(cfg.Bootstrap, nodes[j].Network().Addrs()...)
		}
		nd, err := Start(context.Background(), cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { nd.Close() })
		nodes = append(nodes, nd)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, nd := range nodes {
		for nd.Network().PeerCount() < 1 {
			if time.Now().After(deadline) {
				tb.Fatal("devnet nodes did not peer within 20 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nodes
}

type conversation struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Members []struct {
		Address string `json:"address"`
	} `json:"members"`
}

// TestChatThroughAPI: 1:1 chat and a group between three nodes, through the HTTP API and its event
// stream, with delivery and read receipts.
func TestChatThroughAPI(t *testing.T) {
	nodes := startDevnet(t, tangle.DevNet, 3)
	alice, bob, carol := apiOf(t, nodes[0]), apiOf(t, nodes[1]), apiOf(t, nodes[2])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	aliceEv, bobEv, carolEv := alice.events(ctx), bob.events(ctx), carol.events(ctx)
	bobAddr, carolAddr := nodes[1].Identity().Address().Mail(), nodes[2].Identity().Address().Mail()

	alice.call("POST", "/api/contacts", map[string]string{"petname": "bob", "address": bobAddr}, nil, http.StatusCreated)
	var conv conversation
	alice.call("POST", "/api/conversations", map[string]string{"peer": "bob"}, &conv, http.StatusOK)
	if conv.Kind != "direct" || conv.Name != "bob" {
		t.Fatalf("conversation %+v", conv)
	}
	var sent struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	alice.call("POST", "/api/conversations/"+conv.ID+"/messages", map[string]string{"text": "hi bob"}, &sent, http.StatusAccepted)
	// Gossip may miss a block published right after peering; anti-entropy brings it within ~10 s.
	waitChat(t, bobEv, "chat", 30*time.Second, func(e chatEvent) bool {
		return e.Conversation == conv.ID && e.Message.Text == "hi bob" && !e.Message.Mine
	})
	waitChat(t, aliceEv, "receipt", 30*time.Second, func(e chatEvent) bool {
		return e.Message.ID == sent.ID && e.Message.Status == "delivered"
	})
	bob.call("POST", "/api/conversations/"+conv.ID+"/read", nil, nil, http.StatusNoContent)
	waitChat(t, aliceEv, "receipt", 30*time.Second, func(e chatEvent) bool {
		return e.Message.ID == sent.ID && e.Message.Status == "read"
	})

	var group conversation
	alice.call("POST", "/api/conversations", map[string]any{"name": "Trip", "members": []string{"bob", carolAddr}}, &group, http.StatusCreated)
	if group.Kind != "group" || len(group.Members) != 3 {
		t.Fatalf("group %+v", group)
	}
	alice.call("POST", "/api/conversations/"+group.ID+"/messages", map[string]string{"text": "hello group"}, nil, http.StatusAccepted)
	for _, ev := range []<-chan sseEvent{bobEv, carolEv} {
		waitChat(t, ev, "chat", 30*time.Second, func(e chatEvent) bool {
			return e.Conversation == group.ID && e.Message.Text == "hello group"
		})
	}
	var h struct {
		Messages []struct {
			Text string `json:"text"`
			Kind string `json:"kind"`
		} `json:"messages"`
	}
	carol.call("GET", "/api/conversations/"+group.ID+"/messages", nil, &h, http.StatusOK)
	if len(h.Messages) != 2 || h.Messages[0].Kind != "event" || h.Messages[1].Text != "hello group" {
		t.Fatalf("carol's history %+v", h)
	}
	// The chat is also mail in Chats, for IMAP clients.
	raws := inboxMessages(t, nodes[2], "chats")
	if len(raws) != 2 || !bytes.Contains(raws[1], []byte("Chat-Version: 1\r\n")) ||
		!bytes.Contains(raws[1], []byte("Chat-Conversation-ID: "+group.ID)) {
		t.Fatalf("carol's Chats: %q", raws)
	}
}

// BenchmarkChatLatency10: on a 10-node devnet with real proof of work, a chat message posted to one
// node's API until the recipient node pushes it on its event stream. Reports p50 and p99.
func BenchmarkChatLatency10(b *testing.B) {
	nodes := startDevnet(b, tangle.DevNet, 10)
	from, to := apiOf(b, nodes[1]), apiOf(b, nodes[8])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := to.events(ctx)
	var conv conversation
	from.call("POST", "/api/conversations", map[string]string{"peer": nodes[8].Identity().Address().Mail()}, &conv, http.StatusOK)
	// Warm up until gossip reaches the recipient (the mesh forms in the first seconds).
	from.call("POST", "/api/conversations/"+conv.ID+"/messages", map[string]string{"text": "warm-up"}, nil, http.StatusAccepted)
	waitChat(b, ev, "chat", 60*time.Second, func(e chatEvent) bool { return e.Message.Text == "warm-up" })
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		text := fmt.Sprintf("bench %d", i)
		start := time.Now()
		from.call("POST", "/api/conversations/"+conv.ID+"/messages", map[string]string{"text": text}, nil, http.StatusAccepted)
		waitChat(b, ev, "chat", 60*time.Second, func(e chatEvent) bool { return e.Message.Text == text })
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

// TestMetricsEndpoint: GET /metrics on a running node, with the password, in the Prometheus text format.
func TestMetricsEndpoint(t *testing.T) {
	n, err := Start(context.Background(), testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	req, _ := http.NewRequest("GET", "http://"+n.APIAddr()+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the password: %s", resp.Status)
	}
	req.Header.Set("Authorization", "Bearer "+n.Password())
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the password: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	// Every name docs/api.md lists, with its type and (for the labelled ones) its label values.
	want := map[string]dto.MetricType{}
	for _, g := range []string{"uptime_seconds", "peers", "banned_peers", "synced", "blocks", "blocks_missing_parents",
		"block_store_bytes", "outbox_pow_jobs", "outbox_waiting_for_peers", "outbox_queued_receipt_keys",
		"mailbox_messages", "mailbox_unseen"} {
		want["tanglemail_"+g] = dto.MetricType_GAUGE
	}
	for _, c := range []string{"p2p_bytes", "outbox_sealed", "outbox_published", "outbox_republished",
		"outbox_publish_errors", "outbox_delivered", "outbox_delayed", "outbox_failed", "outbox_receipts_sent", "outbox_receipts_dropped",
		"outbox_receipts_ignored", "outbox_notes_sent", "inbox_blocks", "inbox_trial_opens", "inbox_opened",
		"inbox_rejected", "inbox_filed", "inbox_duplicates", "inbox_failed", "inbox_receipts", "panics"} {
		want["tanglemail_"+c+"_total"] = dto.MetricType_COUNTER
	}
	for name, typ := range want {
		f := fams[name]
		if f == nil || f.GetType() != typ || len(f.Metric) == 0 {
			t.Errorf("metric %s: %v, want a %v", name, f, typ)
		}
	}
	// tanglemail_build_info: 1, with the build's figures as labels, as `tanglemail version` prints them.
	if bi := fams["tanglemail_build_info"].GetMetric(); len(bi) != 1 || bi[0].GetGauge().GetValue() != 1 {
		t.Errorf("tanglemail_build_info: %v", bi)
	} else {
		v, got := version.Get(), map[string]string{}
		for _, l := range bi[0].Label {
			got[l.GetName()] = l.GetValue()
		}
		want := map[string]string{"version": v.Version, "commit": v.Commit, "go_version": v.GoVersion,
			"protocol": strconv.Itoa(v.Protocol), "network": n.cfg.Network.Name}
		if !maps.Equal(got, want) {
			t.Errorf("tanglemail_build_info labels %v, want %v", got, want)
		}
	}
	labels := func(name, label string) map[string]float64 {
		out := map[string]float64{}
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.Label {
				if l.GetName() == label {
					out[l.GetValue()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
		return out
	}
	if got := labels("tanglemail_mailbox_messages", "mailbox"); len(got) < 6 || got["INBOX"] != 0 {
		t.Errorf("mailbox_messages by mailbox: %v", got)
	}
	if got := labels("tanglemail_panics_total", "loop"); len(got) != 4 {
		t.Errorf("panics_total by loop: %v, want outbox, outbox_receipts, inbox, chat", got)
	}
	if got := labels("tanglemail_blocks", "state"); len(got) != 2 {
		t.Errorf("blocks by state: %v", got)
	}
	if got := labels("tanglemail_inbox_rejected_total", "reason"); len(got) != 3 {
		t.Errorf("inbox_rejected_total by reason: %v", got)
	}
}
