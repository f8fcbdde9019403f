package web

import (
	"encoding/xml"
	"net"
	"net/http"
	"strconv"
)

// ClientSettings is where a mail client reaches the node: what autoconfig tells it.
type ClientSettings struct {
	Address string // the user's mail address, <addr>@tangle
	IMAP    string // host:port, STARTTLS
	SMTP    string // host:port, STARTTLS
}

// Thunderbird's autoconfig format, version 1.1
// (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
type autoconfig struct {
	XMLName  xml.Name         `xml:"clientConfig"`
	Version  string           `xml:"version,attr"`
	Provider autoconfProvider `xml:"emailProvider"`
}

type autoconfProvider struct {
	ID       string         `xml:"id,attr"`
	Domain   string         `xml:"domain"`
	Display  string         `xml:"displayName"`
	Short    string         `xml:"displayShortName"`
	Incoming autoconfServer `xml:"incomingServer"`
	Outgoing autoconfServer `xml:"outgoingServer"`
}

type autoconfServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

func server(kind, hostport string) autoconfServer {
	host, port, _ := net.SplitHostPort(hostport)
	p, _ := strconv.Atoi(port)
	return autoconfServer{Type: kind, Hostname: host, Port: p, SocketType: "STARTTLS",
		Authentication: "password-cleartext", Username: "%EMAILADDRESS%"}
}

// serveAutoconfig answers Thunderbird's autoconfig request. It needs no authentication and says nothing
// secret: where the servers are and that the user name is the address.
func (s *Server) serveAutoconfig(w http.ResponseWriter, r *http.Request) {
	cs := s.backend.ClientSettings()
	doc := autoconfig{Version: "1.1", Provider: autoconfProvider{
		ID: "tangle", Domain: "tangle", Display: "tanglemail node", Short: "tanglemail",
		Incoming: server("imap", cs.IMAP),
		Outgoing: server("smtp", cs.SMTP),
	}}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Write([]byte(xml.Header))
	w.Write(out)
	w.Write([]byte("\n"))
}
