package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
	"github.com/partyline/partyline/internal/wstest"
)

// waitTime bounds every wait of a test.
const waitTime = wstest.Wait

// testServer is a partyline Server with the API mounted, served on loopback.
type testServer struct {
	srv     *partyline.Server
	handler http.Handler // the API handler alone, for in-process requests
	url     string       // http://127.0.0.1:port
	key     string       // the API key sent by do, if any
	stop    func()       // shuts the server down, once; also when t ends
}

// startServer serves a memory-backed Server with /ws, /ws/{room} and the API
// built with opts on a loopback httptest server, shut down at the end of t.
func startServer(t testing.TB, opts httpapi.Options) *testServer {
	t.Helper()
	return startServerWith(t, partyline.Options{}, opts)
}

// startServerWith is startServer over a Server built with sopts.
func startServerWith(t testing.TB, sopts partyline.Options, opts httpapi.Options) *testServer {
	t.Helper()
	srv, err := partyline.New(sopts)
	if err != nil {
		t.Fatalf("partyline.New: %v", err)
	}
	api := httpapi.New(srv, opts)
	mux := http.NewServeMux()
	mux.Handle("/ws", srv)
	mux.Handle("/ws/{room}", srv)
	mux.Handle("/api/", api)
	hs := httptest.NewServer(mux)
	stop := sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	t.Cleanup(stop)
	return &testServer{srv: srv, handler: api, url: hs.URL, key: opts.APIKey, stop: stop}
}

// response is an answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCode returns the code of a §3 error body, failing t when the body
// does not have that shape or lacks a message.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("status %d: error body %q is not JSON: %v", r.status, r.body, err)
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("status %d: error body %q lacks a code or message", r.status, r.body)
	}
	return body.Error.Code
}

// message returns the message of a §3 error body.
func (r response) message() string {
	var body struct{ Error struct{ Message string } }
	json.Unmarshal(r.body, &body)
	return body.Error.Message
}

// decode unmarshals the body into v.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// do sends a request over loopback with the server's API key (if any) and
// returns the answer.
func (ts *testServer) do(t testing.TB, method, path, body string) response {
	t.Helper()
	header := http.Header{}
	if ts.key != "" {
		header.Set("Authorization", "Bearer "+ts.key)
	}
	return ts.doHeader(t, method, path, body, header)
}

// doHeader sends a request over loopback with exactly the given headers.
func (ts *testServer) doHeader(t testing.TB, method, path, body string, header http.Header) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, ts.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	req.Header = header.Clone()
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// serveLocal calls the API handler in process with a request from
// remoteAddr: no network traffic, so any caller address can be simulated.
func (ts *testServer) serveLocal(method, path, body, remoteAddr string, header http.Header) response {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = remoteAddr
	for name, values := range header {
		req.Header[name] = values
	}
	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// dial connects to path (e.g. "/ws/lobby?username=alice"), reads the welcome
// frame and, for every room named in the path, its joined and online_users.
func (ts *testServer) dial(t testing.TB, path string, rooms int) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, "ws"+strings.TrimPrefix(ts.url, "http")+path, nil)
	c.Expect("welcome")
	for range rooms {
		c.Expect("joined")
		c.Expect("online_users")
	}
	return c
}
