package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
)

func TestPublishBadBodies(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, tc := range []struct {
		body, code string
		mention    string // the message must contain it
	}{
		{``, partyline.CodeBadRequest, "empty"},
		{`{`, partyline.CodeBadRequest, "JSON"},
		{`{"content":"hi"`, partyline.CodeBadRequest, "JSON"},
		{`{"content":"hi",}`, partyline.CodeBadRequest, "JSON"},
		{`hello`, partyline.CodeBadRequest, "JSON"},
		{`[]`, partyline.CodeBadRequest, "object"},
		{`"hi"`, partyline.CodeBadRequest, "object"},
		{`null`, partyline.CodeBadRequest, "content"},
		{`{}`, partyline.CodeBadRequest, "content"},
		{`{"content":""}`, partyline.CodeBadRequest, "content"},
		{`{"content":"","data":null}`, partyline.CodeBadRequest, "content"},
		{`{"content":5}`, partyline.CodeBadRequest, `"content"`},
		{`{"content":{"a":1}}`, partyline.CodeBadRequest, `"content"`},
		{`{"content":"hi","username":7}`, partyline.CodeBadRequest, `"username"`},
		{`{"content":"hi","room":"other"}`, partyline.CodeBadRequest, `"room"`},
		{`{"content":"hi"}{"content":"again"}`, partyline.CodeBadRequest, "one JSON object"},
		{`{"content":"hi"} x`, partyline.CodeBadRequest, "one JSON object"},
		{`{"content":"hi","data":{"a":}}`, partyline.CodeBadRequest, "JSON"},
		{`{"content":"hi","username":"bad name"}`, partyline.CodeInvalidUsername, ""},
		{`{"content":"hi","username":"` + strings.Repeat("u", 33) + `"}`, partyline.CodeInvalidUsername, ""},
	} {
		resp := ts.do(t, "POST", "/api/rooms/lobby/messages", tc.body)
		if resp.status != http.StatusBadRequest || resp.errorCode(t) != tc.code {
			t.Errorf("publish %q: %d %s, want 400 %s", tc.body, resp.status, resp.body, tc.code)
		} else if !strings.Contains(resp.message(), tc.mention) {
			t.Errorf("publish %q: message %q does not mention %q", tc.body, resp.message(), tc.mention)
		}
	}
	var h historyAnswer
	ts.do(t, "GET", "/api/rooms/lobby/messages", "").decode(t, &h)
	if len(h.Messages) != 0 {
		t.Errorf("lobby holds %d messages after only bad publishes, want 0", len(h.Messages))
	}
}

func TestPublishInvalidRoom(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, room := range []string{"-x", "a%20b", "caf%C3%A9", strings.Repeat("r", 65)} {
		resp := ts.do(t, "POST", "/api/rooms/"+room+"/messages", `{"content":"hi"}`)
		if resp.status != http.StatusBadRequest || resp.errorCode(t) != partyline.CodeInvalidRoom {
			t.Errorf("publish to %q: %d %s, want 400 invalid_room", room, resp.status, resp.body)
		}
	}
}

// publishOfSize returns a publish body of exactly n bytes.
func publishOfSize(n int) string {
	const frame = `{"content":""}`
	return `{"content":"` + strings.Repeat("x", n-len(frame)) + `"}`
}

func TestBodyLimit(t *testing.T) {
	ts := startServer(t, httpapi.Options{MaxBodyBytes: 1024})
	if resp := ts.do(t, "POST", "/api/rooms/lobby/messages", publishOfSize(1024)); resp.status != http.StatusCreated {
		t.Errorf("publish of exactly 1024 bytes: %d %s, want 201", resp.status, resp.body)
	}
	for _, e := range []struct{ path, body string }{
		{"/api/rooms/lobby/messages", publishOfSize(1025)},
		{"/api/rooms/lobby/messages", publishOfSize(1 << 20)},
		{"/api/users/bob/messages", publishOfSize(1025)},
	} {
		resp := ts.do(t, "POST", e.path, e.body)
		if resp.status != http.StatusRequestEntityTooLarge || resp.errorCode(t) != partyline.CodeTooLarge {
			t.Errorf("POST %s of %d bytes: %d %s, want 413 too_large", e.path, len(e.body), resp.status, resp.body)
		}
	}
}

func TestDefaultBodyLimit(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	if resp := ts.do(t, "POST", "/api/rooms/lobby/messages", publishOfSize(httpapi.DefaultMaxBodyBytes)); resp.status != http.StatusCreated {
		t.Errorf("publish of the default limit: %d, want 201", resp.status)
	}
	resp := ts.do(t, "POST", "/api/rooms/lobby/messages", publishOfSize(httpapi.DefaultMaxBodyBytes+1))
	if resp.status != http.StatusRequestEntityTooLarge || resp.errorCode(t) != partyline.CodeTooLarge {
		t.Errorf("publish past the default limit: %d %s, want 413 too_large", resp.status, resp.body)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/api/rooms", "GET, HEAD"},
		{"DELETE", "/api/rooms", "GET, HEAD"},
		{"PUT", "/api/rooms/lobby/messages", "GET, HEAD, POST"},
		{"DELETE", "/api/rooms/lobby/messages", "GET, HEAD, POST"},
		{"POST", "/api/rooms/lobby/users", "GET, HEAD"},
		{"POST", "/api/rooms/lobby", "GET, HEAD"},
		{"DELETE", "/api/rooms/lobby", "GET, HEAD"},
		{"GET", "/api/users/bob/messages", "POST"},
		{"GET", "/api/users/bob/connections", "DELETE"},
		{"POST", "/api/users/bob/connections", "DELETE"},
	} {
		resp := ts.do(t, tc.method, tc.path, "")
		if resp.status != http.StatusMethodNotAllowed || resp.errorCode(t) != "method_not_allowed" {
			t.Errorf("%s %s: %d %s, want 405 method_not_allowed", tc.method, tc.path, resp.status, resp.body)
		}
		if got := resp.header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

func TestHead(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	if resp := ts.do(t, "HEAD", "/api/rooms", ""); resp.status != http.StatusOK {
		t.Errorf("HEAD /api/rooms: %d, want 200", resp.status)
	}
}

func TestUnknownPathIsNotFound(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, path := range []string{"/api/", "/api/nope", "/api/rooms/", "/api/rooms/lobby/nope", "/api/rooms/lobby/messages/1", "/api/users/bob"} {
		resp := ts.do(t, "GET", path, "")
		if resp.status != http.StatusNotFound || resp.errorCode(t) != partyline.CodeNotFound {
			t.Errorf("GET %s: %d %s, want 404 not_found", path, resp.status, resp.body)
		}
	}
}

func TestUnknownPathNeedsTheKeyFirst(t *testing.T) {
	ts := startServer(t, httpapi.Options{APIKey: "k"})
	resp := ts.doHeader(t, "GET", "/api/nope", "", http.Header{})
	if resp.status != http.StatusUnauthorized {
		t.Errorf("GET /api/nope without the key: %d %s, want 401", resp.status, resp.body)
	}
}

func TestResponsesAreJSON(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, path := range []string{"/api/rooms", "/api/nope"} {
		if ct := ts.do(t, "GET", path, "").header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
		}
	}
}
