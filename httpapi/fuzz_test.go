package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
)

// FuzzPublishBody feeds arbitrary bytes as a publish body: the answer is
// 201 with a seq, or a 4xx with a §3 error body; never a 5xx or a panic.
func FuzzPublishBody(f *testing.F) {
	for _, seed := range []string{
		`{"content":"hi"}`,
		`{"content":"hi","data":{"a":[1,2,{"b":null}]},"username":"bot"}`,
		`{"data":null}`,
		`{"content":"\u0000\ud800"}`,
		`{"content":"hi","username":"-"}`,
		`{"content":"hi","extra":1}`,
		`[{"content":"hi"}]`,
		`{"content":"hi"} {}`,
		"\xff\xfe",
		``,
	} {
		f.Add([]byte(seed))
	}
	srv, err := partyline.New(partyline.Options{})
	if err != nil {
		f.Fatalf("partyline.New: %v", err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTime)
		defer cancel()
		srv.Shutdown(ctx)
	})
	api := httpapi.New(srv, httpapi.Options{APIKey: "k", MaxBodyBytes: 4096})

	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/api/rooms/fuzz/messages", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer k")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusCreated:
			var p struct{ Seq uint64 }
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Seq == 0 {
				t.Fatalf("body %q: 201 with %q, want a seq", body, rec.Body)
			}
			if !json.Valid(body) {
				t.Fatalf("body %q is not JSON, yet published", body)
			}
		case rec.Code >= 400 && rec.Code < 500 && rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusNotFound:
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("body %q: %d with %q, want a JSON error", body, rec.Code, rec.Body)
			}
		default:
			t.Fatalf("body %q: status %d %q, want 201 or 4xx", body, rec.Code, rec.Body)
		}
	})
}
