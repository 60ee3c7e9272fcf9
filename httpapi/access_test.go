package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
)

// endpoint is one API call that succeeds with want once access is granted,
// given a user bob who is online.
type endpoint struct {
	method, path, body string
	want               int
}

// endpoints lists every endpoint; the disconnect comes last because it
// takes bob offline.
var endpoints = []endpoint{
	{"POST", "/api/rooms/lobby/messages", `{"content":"hi"}`, http.StatusCreated},
	{"GET", "/api/rooms", "", http.StatusOK},
	{"GET", "/api/rooms/lobby/users", "", http.StatusOK},
	{"GET", "/api/rooms/lobby/messages?after=0", "", http.StatusOK},
	{"POST", "/api/users/bob/messages", `{"content":"hi"}`, http.StatusAccepted},
	{"DELETE", "/api/users/bob/connections", "", http.StatusOK},
}

func TestAPIKeyIsRequired(t *testing.T) {
	ts := startServer(t, httpapi.Options{APIKey: "s3cret-key"})
	ts.dial(t, "/ws/lobby?username=bob", 1)
	refused := map[string]http.Header{
		"no header":       {},
		"wrong key":       {"Authorization": {"Bearer s3cret-kez"}},
		"key prefix":      {"Authorization": {"Bearer s3cret"}},
		"longer key":      {"Authorization": {"Bearer s3cret-key2"}},
		"empty bearer":    {"Authorization": {"Bearer "}},
		"basic scheme":    {"Authorization": {"Basic s3cret-key"}},
		"bare key":        {"Authorization": {"s3cret-key"}},
		"key in X-Header": {"X-Api-Key": {"s3cret-key"}},
	}
	for _, e := range endpoints {
		for name, header := range refused {
			resp := ts.doHeader(t, e.method, e.path, e.body, header)
			if resp.status != http.StatusUnauthorized || resp.errorCode(t) != partyline.CodeUnauthorized {
				t.Errorf("%s %s with %s: %d %s, want 401 unauthorized", e.method, e.path, name, resp.status, resp.body)
			}
			if resp.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %s: 401 without WWW-Authenticate", e.method, e.path, name)
			}
		}
		resp := ts.do(t, e.method, e.path, e.body)
		if resp.status != e.want {
			t.Errorf("%s %s with the key: %d %s, want %d", e.method, e.path, resp.status, resp.body, e.want)
		}
	}
	// None of the refused publishes got through: the only one is seq 1.
	var h historyAnswer
	ts.do(t, "GET", "/api/rooms/lobby/messages", "").decode(t, &h)
	if len(h.Messages) != 1 {
		t.Errorf("lobby holds %d messages after one authorized publish, want 1", len(h.Messages))
	}
}

func TestAPIKeySchemeIsCaseInsensitive(t *testing.T) {
	ts := startServer(t, httpapi.Options{APIKey: "k"})
	resp := ts.doHeader(t, "GET", "/api/rooms", "", http.Header{"Authorization": {"bearer k"}})
	if resp.status != http.StatusOK {
		t.Errorf("lowercase bearer: %d %s, want 200", resp.status, resp.body)
	}
}

func TestAPIKeyServesRemoteCallers(t *testing.T) {
	ts := startServer(t, httpapi.Options{APIKey: "k"})
	key := http.Header{"Authorization": {"Bearer k"}}
	if resp := ts.serveLocal("GET", "/api/rooms", "", "192.0.2.1:1234", key); resp.status != http.StatusOK {
		t.Errorf("remote caller with the key: %d %s, want 200", resp.status, resp.body)
	}
	if resp := ts.serveLocal("GET", "/api/rooms", "", "192.0.2.1:1234", nil); resp.status != http.StatusUnauthorized {
		t.Errorf("remote caller without the key: %d %s, want 401", resp.status, resp.body)
	}
}

func TestWithoutKeyOnlyLoopbackIsServed(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	ts.dial(t, "/ws/lobby?username=bob", 1)
	remote := []string{"192.0.2.1:1234", "[2001:db8::1]:1234", "10.0.0.1:80", "[::ffff:192.0.2.1]:1", "garbage"}
	for _, e := range endpoints {
		for _, addr := range remote {
			resp := ts.serveLocal(e.method, e.path, e.body, addr, nil)
			if resp.status != http.StatusForbidden || resp.errorCode(t) != partyline.CodeForbidden {
				t.Errorf("%s %s from %s: %d %s, want 403 forbidden", e.method, e.path, addr, resp.status, resp.body)
			}
		}
		if resp := ts.do(t, e.method, e.path, e.body); resp.status != e.want {
			t.Errorf("%s %s over loopback: %d %s, want %d", e.method, e.path, resp.status, resp.body, e.want)
		}
	}
	var h historyAnswer
	ts.do(t, "GET", "/api/rooms/lobby/messages", "").decode(t, &h)
	if len(h.Messages) != 1 {
		t.Errorf("lobby holds %d messages after one loopback publish, want 1", len(h.Messages))
	}
}

func TestLoopbackAddresses(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, addr := range []string{"127.0.0.1:5000", "127.9.8.7:1", "[::1]:5000", "[::ffff:127.0.0.1]:5000"} {
		if resp := ts.serveLocal("GET", "/api/rooms", "", addr, nil); resp.status != http.StatusOK {
			t.Errorf("GET /api/rooms from %s: %d %s, want 200", addr, resp.status, resp.body)
		}
	}
}

func TestWithoutKeyProxiedRequestsAreRefused(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for _, header := range []http.Header{
		{"X-Forwarded-For": {"203.0.113.9"}},
		{"Forwarded": {"for=203.0.113.9"}},
		{"X-Real-Ip": {"203.0.113.9"}},
	} {
		resp := ts.doHeader(t, "GET", "/api/rooms", "", header)
		if resp.status != http.StatusForbidden || resp.errorCode(t) != partyline.CodeForbidden {
			t.Errorf("loopback request with %v: %d %s, want 403 forbidden", header, resp.status, resp.body)
		}
	}
}

func TestCrossOriginBrowserRequestsAreRefused(t *testing.T) {
	ts := startServer(t, httpapi.Options{})
	for name, header := range map[string]http.Header{
		"cross-site fetch":    {"Sec-Fetch-Site": {"cross-site"}},
		"foreign origin":      {"Origin": {"http://evil.example"}},
		"same-site subdomain": {"Sec-Fetch-Site": {"same-site"}},
	} {
		resp := ts.doHeader(t, "POST", "/api/rooms/lobby/messages", `{"content":"pwned"}`, header)
		if resp.status != http.StatusForbidden || resp.errorCode(t) != partyline.CodeForbidden {
			t.Errorf("POST with %s: %d %s, want 403 forbidden", name, resp.status, resp.body)
		}
	}
	if resp := ts.doHeader(t, "POST", "/api/rooms/lobby/messages", `{"content":"ok"}`,
		http.Header{"Sec-Fetch-Site": {"same-origin"}}); resp.status != http.StatusCreated {
		t.Errorf("same-origin POST: %d %s, want 201", resp.status, resp.body)
	}
	if resp := ts.doHeader(t, "GET", "/api/rooms", "", http.Header{"Sec-Fetch-Site": {"cross-site"}}); resp.status != http.StatusOK {
		t.Errorf("cross-site GET: %d %s, want 200", resp.status, resp.body)
	}
}
