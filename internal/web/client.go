package web

import (
	"io/fs"
	"net/http"
)

// clientCSP is the Content-Security-Policy of the web client's page and files: only the node's own
// scripts, styles, images (and data: images), connections and frames (the message HTML endpoint);
// no plugins, no <base>, forms only to the node, and the page itself may not be framed.
const clientCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// placeholderPage is served at "/" when the node was built without the web client.
const placeholderPage = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tanglemail</title></head>
<body><h1>tanglemail</h1>
<p>This node was built without its web client. The JSON API is at <code>/api/</code> (docs/api.md);
mail clients connect over IMAP and SMTP (see <code>tanglemail status</code>).</p>
</body></html>
`

// clientHandler serves the web client's files (or the placeholder) with the client CSP.
func (s *Server) clientHandler(files fs.FS) http.Handler {
	var fileServer http.Handler
	if files != nil {
		fileServer = http.FileServerFS(files)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", clientCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; use GET")
			return
		}
		if fileServer != nil {
			h.Set("Cache-Control", "no-cache") // revalidate: a new node version brings new files
			fileServer.ServeHTTP(w, r)
			return
		}
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(placeholderPage))
	})
}
