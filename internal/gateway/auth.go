package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	mrand "math/rand/v2"
	"net"
	netmail "net/mail"
	"net/textproto"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// Resolver is the DNS the checks use: *net.Resolver satisfies it (tests pass dnstest's).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) (names []string, err error)
}

// maxDKIMSignatures bounds the signatures verified per message (each may cost a DNS lookup).
const maxDKIMSignatures = 5

// AuthResult is the outcome of the SPF, DKIM and DMARC checks of one message.
type AuthResult struct {
	SPF        authres.ResultValue
	SPFDomain  string // the MAIL FROM domain checked (the HELO name for a null sender)
	DKIM       []authres.DKIMResult
	DMARC      authres.ResultValue
	FromDomain string       // the RFC 5322 From domain, lower case
	Policy     dmarc.Policy // the policy that applies to FromDomain ("" without a record)
	// Reject is true when DMARC fails under a reject policy: the MX refuses the mail (550 5.7.1).
	Reject bool
}

// Field is the Authentication-Results field (RFC 8601 §2.2) for authserv-id host, with its CRLF.
func (a *AuthResult) Field(host string) string {
	rs := []authres.Result{&authres.SPFResult{Value: a.SPF, From: a.SPFDomain}}
	if len(a.DKIM) == 0 {
		rs = append(rs, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for i := range a.DKIM {
		rs = append(rs, &a.DKIM[i])
	}
	rs = append(rs, &authres.DMARCResult{Value: a.DMARC, From: a.FromDomain})
	return "Authentication-Results: " + authres.Format(host, rs) + "\r\n"
}

// Authenticate runs SPF (RFC 7208 §2.3–§2.4: the MAIL FROM identity, or the HELO identity for a null
// sender), DKIM (RFC 6376 §6) and DMARC (RFC 7489 §6.6) on msg received from ip. DNS failures yield
// temperror results, never an error: a check that cannot run never refuses mail.
func Authenticate(ctx context.Context, r Resolver, ip net.IP, helo, mailFrom string, msg []byte) AuthResult {
	var a AuthResult
	sender := mailFrom
	if sender == "" {
		sender = "postmaster@" + helo
	}
	_, a.SPFDomain, _ = strings.Cut(sender, "@")
	a.SPFDomain = strings.ToLower(a.SPFDomain)
	res, _ := spf.CheckHostWithSender(ip, helo, sender, spf.WithResolver(r), spf.WithContext(ctx))
	a.SPF = authres.ResultValue(res)
	if a.SPF == "" {
		a.SPF = authres.ResultTempError
	}

	lookup := func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: maxDKIMSignatures})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		a.DKIM = append(a.DKIM, authres.DKIMResult{Value: authres.ResultPermError, Reason: "malformed message"})
	}
	for _, v := range vs {
		d := authres.DKIMResult{Value: authres.ResultPass, Domain: strings.ToLower(v.Domain), Identifier: v.Identifier}
		switch {
		case v.Err == nil:
		case dkim.IsTempFail(v.Err):
			d.Value = authres.ResultTempError
		case dkim.IsPermFail(v.Err):
			d.Value = authres.ResultPermError
		default:
			d.Value = authres.ResultFail
		}
		if v.Err != nil {
			d.Reason = v.Err.Error()
		}
		a.DKIM = append(a.DKIM, d)
	}

	a.FromDomain = fromDomain(msg)
	a.DMARC = authres.ResultNone
	if a.FromDomain == "" {
		a.DMARC = authres.ResultPermError // RFC 7489 §6.6.1: no single From domain
		return a
	}
	rec, sub, err := lookupDMARC(a.FromDomain, lookup)
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		return a
	case dmarc.IsTempFail(err):
		a.DMARC = authres.ResultTempError
		return a
	case err != nil:
		a.DMARC = authres.ResultPermError
		return a
	}
	a.Policy = rec.Policy
	if sub && rec.SubdomainPolicy != "" {
		a.Policy = rec.SubdomainPolicy
	}
	aligned := false
	if a.SPF == authres.ResultPass && alignedDomains(a.SPFDomain, a.FromDomain, rec.SPFAlignment) {
		aligned = true
	}
	for _, d := range a.DKIM {
		if d.Value == authres.ResultPass && alignedDomains(d.Domain, a.FromDomain, rec.DKIMAlignment) {
			aligned = true
		}
	}
	if aligned {
		a.DMARC = authres.ResultPass
		return a
	}
	a.DMARC = authres.ResultFail
	a.Reject = a.Policy == dmarc.PolicyReject && sampled(rec.Percent)
	return a
}

// sampled applies a record's pct= (RFC 7489 §6.6.4): the policy applies to that share of failing mail;
// the rest is treated by the next lower policy (here: accepted with the fail recorded).
func sampled(pct *int) bool {
	switch {
	case pct == nil || *pct >= 100:
		return true
	case *pct <= 0:
		return false
	}
	return mrand.IntN(100) < *pct
}

// lookupDMARC finds the DMARC record of domain, or of its organizational domain (RFC 7489 §6.6.3);
// sub is true when the record is the organizational domain's, so that its sp= applies.
func lookupDMARC(domain string, lookup func(string) ([]string, error)) (rec *dmarc.Record, sub bool, err error) {
	rec, err = dmarc.LookupWithOptions(domain, &dmarc.LookupOptions{LookupTXT: lookup})
	if !errors.Is(err, dmarc.ErrNoPolicy) {
		return rec, false, err
	}
	org := orgDomain(domain)
	if org == domain {
		return nil, false, err
	}
	rec, err = dmarc.LookupWithOptions(org, &dmarc.LookupOptions{LookupTXT: lookup})
	return rec, true, err
}

// orgDomain is the organizational domain of d (RFC 7489 §3.2): its public suffix plus one label.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// alignedDomains reports whether an authenticated domain is aligned with the From domain (RFC 7489
// §3.1): equal in strict mode, the same organizational domain in relaxed mode (the default).
func alignedDomains(auth, from string, mode dmarc.AlignmentMode) bool {
	auth, from = strings.ToLower(auth), strings.ToLower(from)
	if auth == from {
		return true
	}
	if mode == dmarc.AlignmentStrict || auth == "" {
		return false
	}
	return orgDomain(auth) == orgDomain(from)
}

// fromDomain is the domain of the message's single From address, lower case; "" when there is no From
// field, more than one, or more than one address in it.
func fromDomain(msg []byte) string {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(msg)))
	h, err := tp.ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	froms := h.Values("From")
	if len(froms) != 1 {
		return ""
	}
	list, err := netmail.ParseAddressList(froms[0])
	if err != nil || len(list) != 1 {
		return ""
	}
	_, d, ok := strings.Cut(list[0].Address, "@")
	if !ok {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(d, "."))
}
