package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func embedded(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(files, "static/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandlerServesAssets(t *testing.T) {
	tests := []struct {
		path, file, contentType string
	}{
		{"/", "index.html", "text/html; charset=utf-8"},
		{"/partyline.js", "partyline.js", "text/javascript; charset=utf-8"},
		{"/app.js", "app.js", "text/javascript; charset=utf-8"},
		{"/style.css", "style.css", "text/css; charset=utf-8"},
		{"/favicon.svg", "favicon.svg", "image/svg+xml"},
	}
	for _, tt := range tests {
		res := get(t, http.MethodGet, tt.path, nil)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", tt.path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tt.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", tt.path, got, tt.contentType)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", tt.path, got)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tt.path, got)
		}
		if res.Header.Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", tt.path)
		}
		if want := embedded(t, tt.file); string(body) != string(want) {
			t.Errorf("GET %s: body is %d bytes, want the %d of static/%s", tt.path, len(body), len(want), tt.file)
		}
	}
}

func TestHandlerPagePolicy(t *testing.T) {
	res := get(t, http.MethodGet, "/", nil)
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self' ws: wss:"} {
		if !strings.Contains(csp, want) {
			t.Errorf("GET /: Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("GET /: Content-Security-Policy %q allows inline code", csp)
	}
}

func TestHandlerNotFound(t *testing.T) {
	for _, path := range []string{"/nope", "/index.html", "/static/app.js", "/partyline.js/x", "/ws", "/api/rooms", "/web.go"} {
		if res := get(t, http.MethodGet, path, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, res.StatusCode)
		}
	}
}

func TestHandlerMethods(t *testing.T) {
	res := get(t, http.MethodPost, "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", res.StatusCode)
	}
	if got := res.Header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("POST /: Allow %q, want \"GET, HEAD\"", got)
	}

	res = get(t, http.MethodHead, "/partyline.js", nil)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD /partyline.js: status %d with %d body bytes, want 200 and none", res.StatusCode, len(body))
	}
}

func TestHandlerRevalidates(t *testing.T) {
	etag := get(t, http.MethodGet, "/app.js", nil).Header.Get("ETag")
	res := get(t, http.MethodGet, "/app.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("GET /app.js with If-None-Match %s: status %d, want 304", etag, res.StatusCode)
	}
	res = get(t, http.MethodGet, "/app.js", http.Header{"If-None-Match": {`"stale"`}})
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET /app.js with a stale If-None-Match: status %d, want 200", res.StatusCode)
	}
}

// TestPageIsSelfContained checks that everything the page loads is served by
// the handler itself: no CDN, nothing from the internet.
func TestPageIsSelfContained(t *testing.T) {
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(string(embedded(t, "index.html")), -1)
	if len(refs) < 3 {
		t.Fatalf("index.html references %d assets, want at least the script, the stylesheet and the icon", len(refs))
	}
	imports := regexp.MustCompile(`(?m)^\s*import\b[^"']*["']([^"']+)["']`)
	for _, name := range []string{"app.js", "partyline.js"} {
		refs = append(refs, imports.FindAllStringSubmatch(string(embedded(t, name)), -1)...)
	}
	for _, ref := range refs {
		path := ref[1]
		if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") {
			t.Errorf("the page loads %q, which is not a path on this server", path)
			continue
		}
		if res := get(t, http.MethodGet, path, nil); res.StatusCode != http.StatusOK {
			t.Errorf("the page loads %s, which answers %d", path, res.StatusCode)
		}
	}
	css := string(embedded(t, "style.css"))
	if strings.Contains(css, "@import") || strings.Contains(css, "url(") {
		t.Error("style.css loads other files; it must be self-contained")
	}
}

// TestPageRendersTextOnly guards the rule that user data never reaches
// innerHTML: the scripts must not use the HTML-parsing DOM APIs at all.
func TestPageRendersTextOnly(t *testing.T) {
	for _, name := range []string{"app.js", "partyline.js"} {
		src := string(embedded(t, name))
		for _, api := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if strings.Contains(src, api) {
				t.Errorf("%s uses %s; render user data with textContent", name, api)
			}
		}
	}
}
