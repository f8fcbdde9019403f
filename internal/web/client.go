package web

import (
	"io/fs"
	"net/http"

	"github.com/tanglemail/tanglemail/internal/web/ui"
)

// clientCSP is the Content-Security-Policy of the web client's page and files: only the node's own
// scripts, styles, images (and data: images), connections and frames (the message HTML endpoint);
// no plugins, no <base>, forms only to the node, and the page itself may not be framed.
const clientCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
	"connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// clientHandler serves the web client's files (files, or the built-in client of package ui when nil)
// with the client CSP. Only GET and HEAD are allowed.
func (s *Server) clientHandler(files fs.FS) http.Handler {
	if files == nil {
		files = ui.FS
	}
	fileServer := http.FileServerFS(files)
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
		h.Set("Cache-Control", "no-cache") // revalidate: a new node version brings new files
		fileServer.ServeHTTP(w, r)
	})
}
