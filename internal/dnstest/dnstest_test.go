package dnstest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestLookups(t *testing.T) {
	s := Start(t,
		"gw.test. 300 IN MX 10 mx.gw.test.",
		"mx.gw.test. 300 IN A 127.0.0.1",
		`gw.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
	)
	r := s.Resolver()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mx, err := r.LookupMX(ctx, "GW.test")
	if err != nil || len(mx) != 1 || mx[0].Host != "mx.gw.test." || mx[0].Pref != 10 {
		t.Fatalf("MX = %v, %v", mx, err)
	}
	txt, err := r.LookupTXT(ctx, "gw.test")
	if err != nil || len(txt) != 1 || txt[0] != "v=spf1 ip4:127.0.0.1 -all" {
		t.Fatalf("TXT = %q, %v", txt, err)
	}
	ips, err := r.LookupIPAddr(ctx, "mx.gw.test")
	if err != nil || len(ips) != 1 || !ips[0].IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("A = %v, %v", ips, err)
	}
	if err := s.Add("late.test. TXT \"added\""); err != nil {
		t.Fatal(err)
	}
	if txt, err := r.LookupTXT(ctx, "late.test"); err != nil || len(txt) != 1 || txt[0] != "added" {
		t.Fatalf("late TXT = %q, %v", txt, err)
	}
	_, err = r.LookupTXT(ctx, "nowhere.test")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Fatalf("unknown name: err = %v, want not found", err)
	}
}
