package web

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// handleMetrics is GET /metrics: the backend's metrics in the Prometheus exposition format (the text
// format 0.0.4 unless the scraper asks for another), written by the Prometheus client library
// (promhttp). It needs the node's password like the API; a Prometheus scrape config gives it as a
// bearer token. No metric holds message content or addresses. A collector that fails is reported in
// the log and its metrics are left out; the others are still served.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(s.backend.Metrics(), promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      promhttpLog{s},
	}).ServeHTTP(w, r)
}

// promhttpLog passes promhttp's errors to the server's log.
type promhttpLog struct{ s *Server }

func (l promhttpLog) Println(v ...any) { l.s.log.Error("metrics", "err", fmt.Sprint(v...)) }
