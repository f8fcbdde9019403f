package invite

import (
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, stays within its bounds, and what it accepts formats canonically to a
// text it parses again to the same invite.
func FuzzParse(f *testing.F) {
	f.Add(base())
	f.Add(base() + "&addr=/ip6/2001:db8::1/udp/4580/quic-v1&name=Alice")
	f.Add("TANGLEMAIL:invite?v=1")
	f.Add(Prefix + "v=2")
	f.Add(Prefix + "&&&=&")
	f.Add(Prefix + "v=1&name=%")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := Parse(s)
		if err != nil {
			if inv != nil {
				t.Fatal("an invite with an error")
			}
			return
		}
		if len(inv.Addrs) == 0 || len(inv.Addrs) > MaxAddrs || inv.PeerID == "" || inv.Network == "" {
			t.Fatalf("accepted an invite outside the bounds: %+v", inv)
		}
		c := inv.String()
		again, err := Parse(c)
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", c, err)
		}
		if again.String() != c || again.Name != inv.Name || strings.Join(again.Addrs, " ") != strings.Join(inv.Addrs, " ") {
			t.Fatalf("round trip changed the invite: %q → %q", c, again.String())
		}
	})
}
