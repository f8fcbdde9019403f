package web

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tanglemail/tanglemail/internal/api"
)

// Uploads: POST /api/messages also takes multipart/form-data (RFC 7578): a part named "message" with the
// JSON of api.Compose, then one part named "attachment" per file, each with its file name (the
// filename parameter of its Content-Disposition) and Content-Type. Limits: maxAttachments files,
// maxAttachmentBytes together, names of at most maxAttachmentName bytes; the whole body at most
// maxUploadBody. A cross-site HTML form can send multipart/form-data without a CORS preflight, so such a
// body is taken only from a request that a form cannot make: one with the node's own Origin (every
// browser sends Origin with a POST made by fetch or XMLHttpRequest), or one authenticated with a Bearer
// password (a browser never adds that by itself).

// isMultipartForm reports whether a Content-Type is multipart/form-data.
func isMultipartForm(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "multipart/form-data"
}

// uploadAllowed says whether a multipart/form-data request may be taken (see above).
func uploadAllowed(r *http.Request) bool {
	if r.Header.Get("Origin") != "" {
		return sameOrigin(r)
	}
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "Bearer")
}

// readUpload reads a multipart/form-data body of POST /api/messages. On error it has answered (400
// or 413) and returns false.
func readUpload(w http.ResponseWriter, r *http.Request) (api.Compose, []attachment, bool) {
	var req api.Compose
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, http.StatusBadRequest, "the multipart/form-data body cannot be read: "+err.Error())
		return req, nil, false
	}
	var files []attachment
	total := 0
	haveMessage := false
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			uploadError(w, err)
			return req, nil, false
		}
		switch p.FormName() {
		case "message":
			if haveMessage {
				writeError(w, http.StatusBadRequest, `the part "message" occurs twice: send one`)
				return req, nil, false
			}
			haveMessage = true
			if !decodeJSONFrom(w, io.LimitReader(p, maxBody), &req, `the part "message"`) {
				return req, nil, false
			}
		case "attachment":
			if len(files) == maxAttachments {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("too many attachments: at most %d in one message", maxAttachments))
				return req, nil, false
			}
			name, msg := attachmentName(p.FileName())
			if msg != "" {
				writeError(w, http.StatusBadRequest, msg)
				return req, nil, false
			}
			data, err := io.ReadAll(io.LimitReader(p, int64(maxAttachmentBytes-total+1)))
			if err != nil {
				uploadError(w, err)
				return req, nil, false
			}
			total += len(data)
			if total > maxAttachmentBytes {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the attachments are too large: at most %d MiB together", maxAttachmentBytes>>20))
				return req, nil, false
			}
			files = append(files, attachment{name: name, ctype: attachmentType(p.Header.Get("Content-Type")), data: data})
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf(`unknown part %q: send the parts "message" (the JSON) and "attachment" (one per file)`, p.FormName()))
			return req, nil, false
		}
	}
	if !haveMessage {
		writeError(w, http.StatusBadRequest, `the part "message" is missing: it holds the message's JSON (to, cc, bcc, subject, text)`)
		return req, nil, false
	}
	return req, files, true
}

func uploadError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes: send fewer or smaller attachments (at most %d MiB together)", tooBig.Limit, maxAttachmentBytes>>20))
		return
	}
	writeError(w, http.StatusBadRequest, "the multipart/form-data body is malformed: "+err.Error())
}

// attachmentName checks a file name as uploaded and returns the name to put in the message (its last
// path element), or a sentence saying what is wrong.
func attachmentName(name string) (string, string) {
	name = strings.TrimSpace(path.Base(strings.ReplaceAll(name, `\`, "/")))
	switch {
	case name == "" || name == "." || name == "/":
		return "", `each part "attachment" needs a file name (the filename parameter of its Content-Disposition)`
	case len(name) > maxAttachmentName:
		return "", fmt.Sprintf("the file name %.40q… is too long: at most %d bytes", name, maxAttachmentName)
	case !utf8.ValidString(name):
		return "", "a file name is not valid UTF-8"
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", fmt.Sprintf("the file name %q contains a control character", name)
		}
	}
	return name, ""
}

// attachmentType is the media type of an uploaded file: its Content-Type without parameters if that
// is a valid type/subtype, else application/octet-stream. Text types keep no charset: the bytes are
// sent as they are, in base64.
func attachmentType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") || strings.HasPrefix(mt, "multipart/") || strings.HasPrefix(mt, "message/") {
		return "application/octet-stream"
	}
	return mt
}
