package web

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Metric is one sample for GET /metrics: a counter or a gauge, with optional labels.
type Metric struct {
	Name   string      // tanglemail_…, [a-zA-Z_:][a-zA-Z0-9_:]*
	Help   string      // one line
	Type   string      // "counter" or "gauge"
	Labels [][2]string // name, value pairs
	Value  float64
}

// handleMetrics is GET /metrics: the node's counters and gauges in the Prometheus text exposition
// format, version 0.0.4 (one "# HELP" and "# TYPE" line per metric name, then its samples). It needs
// the node's password like the API; a Prometheus scrape config gives it as a bearer token. No metric
// holds message content or addresses.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	ms := s.backend.Metrics()
	slices.SortStableFunc(ms, func(a, b Metric) int { return strings.Compare(a.Name, b.Name) })
	var b strings.Builder
	for i, m := range ms {
		if i == 0 || ms[i-1].Name != m.Name {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", m.Name, escapeHelp(m.Help), m.Name, m.Type)
		}
		b.WriteString(m.Name)
		if len(m.Labels) > 0 {
			b.WriteByte('{')
			for j, l := range m.Labels {
				if j > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%q", l[0], escapeLabel(l[1]))
			}
			b.WriteByte('}')
		}
		b.WriteByte(' ')
		b.WriteString(formatValue(m.Value))
		b.WriteByte('\n')
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(b.String()))
}

// escapeHelp escapes a HELP text: backslash and line feed.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// escapeLabel makes a label value safe for %q: Go's quoting escapes backslash, quote and line feed as
// the format wants; other unprintable characters become '_' so that %q emits no \x or \u escapes.
func escapeLabel(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && !unicode.IsPrint(r) {
			return '_'
		}
		return r
	}, s)
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
