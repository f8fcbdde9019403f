package web

import (
	"fmt"
	"net/http"
	"strings"

	"rsc.io/qr"
)

// maxQRText bounds the text of a QR code (docs/api.md): an invite (protocol.md §11) fits.
const maxQRText = 2048

// handleQR is GET /api/qr?text=…: an SVG QR code (ISO/IEC 18004, error correction level M) with a
// quiet zone of four modules. The SVG is one path of unit squares and has no script or reference.
func (s *Server) handleQR(w http.ResponseWriter, r *http.Request) {
	text := r.URL.Query().Get("text")
	if text == "" {
		writeError(w, http.StatusBadRequest, "query parameter text is missing: GET /api/qr?text=<what to encode>")
		return
	}
	if len(text) > maxQRText {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter text is too long: at most %d bytes", maxQRText))
		return
	}
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		writeError(w, http.StatusBadRequest, "text cannot be encoded as a QR code: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(qrSVG(code)))
}

// qrSVG draws a QR code as SVG.
func qrSVG(code *qr.Code) string {
	const quiet = 4
	n := code.Size + 2*quiet
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y := 0; y < code.Size; y++ {
		for x := 0; x < code.Size; x++ {
			if code.Black(x, y) {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+quiet, y+quiet)
			}
		}
	}
	b.WriteString(`"/></svg>` + "\n")
	return b.String()
}
