// Package web serves partyline's chat page and its JavaScript client library
// (docs/protocol.md §7, docs/client.md).
//
// The files live in static/ and are embedded in the binary: there is no build
// step, and the page fetches nothing from outside the server. Mount the
// handler at the root, beside the WebSocket endpoints:
//
//	mux.Handle("GET /ws", srv)
//	mux.Handle("GET /ws/{room}", srv)
//	mux.Handle("GET /sse", srv)
//	mux.Handle("GET /sse/{room}", srv)
//	mux.Handle("POST /sse/{session}", srv)
//	mux.Handle("/", web.Handler())
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var files embed.FS

// contentTypes maps the extensions of the embedded files to their media
// types. It is explicit rather than taken from the system's MIME tables, so
// the answer is the same on every machine.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// pagePolicy is the Content-Security-Policy of the page: scripts, styles and
// images come from this server only, so even a message that slipped into the
// DOM as HTML could not run code. WebSocket URLs are listed explicitly because
// older browsers do not count ws: and wss: as 'self'.
const pagePolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// assets maps URL paths to files: "/" is index.html, every other file is
// served under its own name.
var assets = loadAssets()

func loadAssets() map[string]asset {
	root, err := fs.Sub(files, "static")
	if err != nil {
		panic("web: " + err.Error())
	}
	names, err := fs.Glob(root, "*")
	if err != nil {
		panic("web: " + err.Error())
	}
	m := make(map[string]asset, len(names))
	for _, name := range names {
		body, err := fs.ReadFile(root, name)
		if err != nil {
			panic("web: " + err.Error())
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			panic("web: no content type for embedded file " + name)
		}
		sum := sha256.Sum256(body)
		urlPath := "/" + name
		if name == "index.html" {
			urlPath = "/"
		}
		m[urlPath] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return m
}

// Handler returns the handler of the page: GET or HEAD of "/" answers
// index.html, of "/partyline.js" the client library, and of "/app.js",
// "/style.css" and "/favicon.svg" the page's own assets. Any other path is
// 404 and any other method 405.
//
// Responses carry a strong ETag and "Cache-Control: no-cache": browsers keep
// the files but revalidate them on each load with a cheap 304, so a new
// binary's page is picked up at once without versioned file names.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	a, ok := assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(a.contentType, "text/html") {
		h.Set("Content-Security-Policy", pagePolicy)
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
	}
	// ServeContent answers If-None-Match against the ETag set above, and
	// Range requests; the zero time leaves Last-Modified out.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
