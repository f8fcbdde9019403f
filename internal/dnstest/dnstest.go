// Package dnstest is test support: an authoritative DNS server on 127.0.0.1 (UDP and TCP on one
// ephemeral port) answering from records the test adds in zone-file syntax, and a *net.Resolver that
// asks only that server. Tests of code that looks up MX, TXT (SPF, DKIM, DMARC), A/AAAA or SRV records
// use it so that no lookup ever reaches the machine's resolver or the Internet. Only tests import it.
//
// Locking: the record table is guarded by one mutex; Add may be called while the server answers.
// Names are matched case-insensitively (RFC 4343); a name with no record of the asked type gets
// NOERROR with an empty answer if it has records of other types, NXDOMAIN otherwise (RFC 1034 §4.3.2).
package dnstest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Server is a running test DNS server.
type Server struct {
	// Addr is the "127.0.0.1:port" the server listens on, UDP and TCP.
	Addr string

	mu      sync.Mutex
	records map[string][]dns.RR // lower-case FQDN → records
	udp     *dns.Server
	tcp     *dns.Server
}

// Start starts a server on 127.0.0.1 and stops it when t ends. records are zone-file lines such as
// "gw.test. 300 IN MX 10 mx.gw.test." or `gw.test. TXT "v=spf1 ip4:127.0.0.1 -all"`.
func Start(t testing.TB, records ...string) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dnstest: listen udp: %v", err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		t.Fatalf("dnstest: listen tcp on the udp port: %v", err)
	}
	s := &Server{Addr: pc.LocalAddr().String(), records: map[string][]dns.RR{}}
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: ln, Handler: s}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	t.Cleanup(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
	for _, r := range records {
		if err := s.Add(r); err != nil {
			t.Fatalf("dnstest: %v", err)
		}
	}
	return s
}

// Add adds one record in zone-file syntax (a missing TTL means 3600 s).
func (s *Server) Add(record string) error {
	rr, err := dns.NewRR(record)
	if err != nil {
		return err
	}
	if rr == nil {
		return nil
	}
	name := strings.ToLower(rr.Header().Name)
	s.mu.Lock()
	s.records[name] = append(s.records[name], rr)
	s.mu.Unlock()
	return nil
}

// Resolver returns a resolver that sends every query to this server (Go's own resolver, never the
// system's).
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second}
			return d.DialContext(ctx, network, s.Addr)
		},
	}
}

// ServeDNS answers one query from the record table.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		s.mu.Lock()
		rrs, known := s.records[strings.ToLower(q.Name)]
		for _, rr := range rrs {
			if q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			} else if rr.Header().Rrtype == dns.TypeCNAME {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
		s.mu.Unlock()
		if !known {
			m.Rcode = dns.RcodeNameError
		}
	} else {
		m.Rcode = dns.RcodeFormatError
	}
	w.WriteMsg(m)
}
