// Command webhook-receiver is a minimal endpoint for partyline's webhooks
// (docs/operations.md, "Webhooks"): it checks each request's signature,
// prints each event once and answers 204. It uses only the standard
// library, so it can be copied as the start of a real receiver.
//
//	PARTYLINE_WEBHOOK_SECRET=s3cret go run ./examples/webhook-receiver -addr 127.0.0.1:9000
//	partyline --webhook-url http://127.0.0.1:9000/ --webhook-secret s3cret
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "address to listen on")
	secret := flag.String("secret", os.Getenv("PARTYLINE_WEBHOOK_SECRET"), "partyline's --webhook-secret (default $PARTYLINE_WEBHOOK_SECRET)")
	flag.Parse()
	if *secret == "" {
		log.Fatal("webhook-receiver: set -secret or PARTYLINE_WEBHOOK_SECRET")
	}
	log.Printf("webhook-receiver: listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, newReceiver([]byte(*secret), os.Stdout, 100_000)))
}

// verify reports whether header, the Partyline-Signature of body, is
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>" made within
// 5 minutes of now. Any one v1 may match: a sender rotating its secret
// sends one per secret.
func verify(secret []byte, header string, body []byte, now time.Time) bool {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch key {
		case "t":
			ts = value
		case "v1":
			if sig, err := hex.DecodeString(value); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(unix, 0)).Abs() > 5*time.Minute {
		return false // no timestamp, or a replay of an old request
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) { // constant time
			return true
		}
	}
	return false
}

// receiver prints each event of each verified batch once. Events come at
// least once, so it remembers the ids of the last events it saw.
type receiver struct {
	secret []byte
	out    io.Writer

	mu    sync.Mutex          // guards the following
	acted map[string]struct{} // the ids in ring
	ring  []string            // recent ids, oldest overwritten first
	next  int                 // where the next id goes in ring
}

func newReceiver(secret []byte, out io.Writer, remember int) *receiver {
	return &receiver{secret: secret, out: out, acted: make(map[string]struct{}), ring: make([]string, remember)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if !verify(rc.secret, r.Header.Get("Partyline-Signature"), body, time.Now()) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var batch struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	for _, raw := range batch.Events {
		var e struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &e) != nil || rc.seen(e.ID) {
			continue
		}
		// A real receiver acts on the event here. If that fails it answers
		// non-2xx, so that partyline sends the batch again, and does not
		// remember the id, so that the event is acted on then.
		if _, err := fmt.Fprintf(rc.out, "%s %s\n", e.Type, raw); err != nil {
			http.Error(w, "could not act on "+e.ID, http.StatusInternalServerError)
			return
		}
		rc.remember(e.ID)
	}
	w.WriteHeader(http.StatusNoContent)
}

// seen reports whether the event id was acted on already.
func (rc *receiver) seen(id string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	_, ok := rc.acted[id]
	return ok
}

// remember records that the event id was acted on, forgetting the oldest
// id past the bound.
func (rc *receiver) remember(id string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, ok := rc.acted[id]; ok {
		return
	}
	delete(rc.acted, rc.ring[rc.next])
	rc.ring[rc.next] = id
	rc.next = (rc.next + 1) % len(rc.ring)
	rc.acted[id] = struct{}{}
}
