package invite

import (
	"errors"
	"strings"
	"testing"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/protocoldoc"
)

const (
	testPeer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	testTo   = "tm1yqak5faue6m2gttz5w5dq2n0p4ek2vs4wuw7ysax8tqy3gvtt8dzjv2wx6m@tangle"
)

func TestProtocolVectorsInvite(t *testing.T) {
	vs, err := protocoldoc.Read(protocoldoc.Path, "### 11.1 Invite vectors")
	if err != nil {
		t.Fatal(err)
	}
	var valid, invalid int
	for _, v := range vs {
		in := v.Vals["invite"]
		inv, err := Parse(in)
		switch v.Vals["vector"] {
		case "valid":
			valid++
			if err != nil {
				t.Errorf("%s: %v", in, err)
				continue
			}
			name := v.Vals["name"]
			if inv.Network != v.Vals["net"] || inv.Address.Mail() != v.Vals["to"] || inv.PeerID != v.Vals["peer"] ||
				strings.Join(inv.Addrs, " ") != v.Vals["addr"] || inv.Name != name {
				t.Errorf("%s: parsed to %+v", in, inv)
			}
			want := in
			if c, ok := v.Vals["canonical"]; ok {
				want = c
			}
			if got := inv.String(); got != want {
				t.Errorf("canonical form:\n got %s\nwant %s", got, want)
			}
		case "invalid":
			invalid++
			if err == nil {
				t.Errorf("%s (%s): parsed, want an error", in, v.Vals["reason"])
			}
		default:
			t.Errorf("unknown vector kind %q", v.Vals["vector"])
		}
	}
	if valid < 2 || invalid < 5 {
		t.Errorf("%d valid and %d invalid vectors; the document has more", valid, invalid)
	}
}

func base() string {
	return Prefix + "v=1&net=tanglemail&to=" + testTo + "&peer=" + testPeer + "&addr=/ip4/203.0.113.7/tcp/4580"
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		is       error
		mention  string
	}{
		{"empty", "", ErrNotInvite, ""},
		{"a web link", "https://example.com/invite?v=1", ErrNotInvite, ""},
		{"an address", testTo, ErrNotInvite, ""},
		{"newer version", strings.Replace(base(), "v=1", "v=7", 1), ErrVersion, "version 7"},
		{"bad version", strings.Replace(base(), "v=1", "v=one", 1), ErrInvalid, "version"},
		{"no version", strings.Replace(base(), "v=1&", "", 1), ErrInvalid, "parameter v"},
		{"no network", strings.Replace(base(), "net=tanglemail&", "", 1), ErrInvalid, "parameter net"},
		{"bad network", strings.Replace(base(), "net=tanglemail", "net=Tangle%20Mail", 1), ErrInvalid, "network name"},
		{"no to", strings.Replace(base(), "to="+testTo+"&", "", 1), ErrInvalid, "parameter to"},
		{"bad to", strings.Replace(base(), "to=tm1", "to=xx1", 1), ErrInvalid, "parameter to"},
		{"no peer", strings.Replace(base(), "peer="+testPeer+"&", "", 1), ErrInvalid, "parameter peer"},
		{"peer not base58", strings.Replace(base(), testPeer, strings.Repeat("0", 52), 1), ErrInvalid, "base58"},
		{"short peer", strings.Replace(base(), testPeer, "12D3", 1), ErrInvalid, "peer id"},
		{"no addr", strings.Replace(base(), "&addr=/ip4/203.0.113.7/tcp/4580", "", 1), ErrInvalid, "no peer address"},
		{"addr not multiaddr", base() + "&addr=203.0.113.7:4580", ErrInvalid, "not a multiaddr"},
		{"addr bad ip", base() + "&addr=/ip4/203.0.113.777/tcp/1", ErrInvalid, "bad IP"},
		{"addr ip6 as ip4", base() + "&addr=/ip4/::1/tcp/1", ErrInvalid, "bad IP"},
		{"addr unix", base() + "&addr=/unix/tmp/x/sock", ErrInvalid, "does not start with"},
		{"addr with p2p", base() + "&addr=/ip4/192.0.2.1/tcp/1/p2p/" + testPeer, ErrInvalid, "/p2p"},
		{"addr with space", base() + "&addr=/ip4/192.0.2.1/tcp/1%20x", ErrInvalid, "space"},
		{"addr empty part", base() + "&addr=/ip4/192.0.2.1//tcp/1", ErrInvalid, "empty part"},
		{"too many addrs", base() + strings.Repeat("&addr=/ip4/192.0.2.1/tcp/1", 0) + addrs(9), ErrInvalid, "more than 8"},
		{"twice", base() + "&net=tanglemail", ErrInvalid, "twice"},
		{"no value", base() + "&flag", ErrInvalid, "no value"},
		{"bad escape", base() + "&name=%zz", ErrInvalid, "percent"},
		{"name with @", base() + "&name=a@b", ErrInvalid, "suggested name"},
		{"name control", base() + "&name=a%0Ab", ErrInvalid, "control"},
		{"name spaces", base() + "&name=%20a", ErrInvalid, "suggested name"},
		{"too long", base() + "&x=" + strings.Repeat("a", MaxLen), ErrInvalid, "at most 2048"},
		{"too many params", base() + strings.Repeat("&x=1", maxParams), ErrInvalid, "parameters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("parsed %q as %+v, want an error", tc.in, inv)
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q, want %v mentioning %q", err, tc.is, tc.mention)
			}
		})
	}
}

func addrs(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("&addr=/ip4/192.0.2." + string(rune('1'+i)) + "/tcp/4580")
	}
	return b.String()
}

func TestRoundTripAndPeerAddrs(t *testing.T) {
	addr, err := identity.ParseAddress(testTo)
	if err != nil {
		t.Fatal(err)
	}
	inv := &Invite{Network: "tanglemail-dev", Address: addr, PeerID: testPeer,
		Addrs: []string{"/ip4/127.0.0.1/tcp/40001", "/dns4/node.example/tcp/4580"}, Name: "Zoë & co?"}
	s := inv.String()
	if !strings.Contains(s, "name=Zo%C3%AB%20%26%20co%3F") || !strings.Contains(s, "&addr=/ip4/127.0.0.1/tcp/40001&") {
		t.Errorf("escaping: %s", s)
	}
	got, err := Parse("  " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != s || got.Name != inv.Name {
		t.Errorf("round trip: %s\n%+v", got.String(), got)
	}
	pa := got.PeerAddrs()
	if len(pa) != 2 || pa[0] != "/ip4/127.0.0.1/tcp/40001/p2p/"+testPeer {
		t.Errorf("PeerAddrs: %v", pa)
	}
	if r := got.Reveals(); !strings.Contains(r, "127.0.0.1, node.example") || !strings.Contains(r, "network addresses") {
		t.Errorf("Reveals: %s", r)
	}
}

func TestChooseAddrs(t *testing.T) {
	id := "/p2p/" + testPeer
	got := ChooseAddrs([]string{
		"/ip4/127.0.0.1/tcp/4580" + id,
		"/ip4/192.168.1.5/tcp/4580" + id,
		"/ip4/0.0.0.0/tcp/4580",
		"/ip6/fe80::1/tcp/4580",
		"/ip4/203.0.113.7/udp/4580/quic-v1" + id,
		"/ip4/192.168.1.5/tcp/4580",
		"/dns4/me.example/tcp/4580",
		"/ip6/::1/tcp/4580",
		"/ip4/224.0.0.1/tcp/1",
	})
	want := "/ip4/203.0.113.7/udp/4580/quic-v1 /dns4/me.example/tcp/4580 /ip4/192.168.1.5/tcp/4580"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %v\nwant %s", got, want)
	}
	loop := ChooseAddrs([]string{"/ip4/127.0.0.1/tcp/1" + id, "/ip6/::1/tcp/2", "/ip4/0.0.0.0/tcp/3"})
	if strings.Join(loop, " ") != "/ip4/127.0.0.1/tcp/1 /ip6/::1/tcp/2" {
		t.Errorf("loopback only: %v", loop)
	}
	var many []string
	for i := range 20 {
		many = append(many, "/ip4/203.0.113."+string(rune('a'+i))+"/tcp/1") // invalid IPs are dropped
		many = append(many, "/ip4/198.51.100.1/tcp/"+string(rune('1'+i%9))+string(rune('0'+i/9)))
	}
	if got := ChooseAddrs(many); len(got) != MaxAddrs {
		t.Errorf("%d addresses, want %d: %v", len(got), MaxAddrs, got)
	}
}
