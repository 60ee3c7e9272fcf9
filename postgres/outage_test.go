package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/postgres"
)

// proxyMode is what a proxy does with connections.
type proxyMode int

const (
	forward   proxyMode = iota // pass bytes to and from PostgreSQL
	refuse                     // close each connection at once: a server that is down
	blackhole                  // accept and never answer: a server that hangs
)

// proxy is a TCP proxy on loopback in front of PostgreSQL that a test can
// cut and restore.
type proxy struct {
	target string
	ln     net.Listener

	mu    sync.Mutex // guards the following
	mode  proxyMode
	conns map[net.Conn]bool // open client and upstream connections

	wg sync.WaitGroup // the accept loop and the copying goroutines
}

// startProxy starts a proxy to target and stops it when t ends.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Go(p.acceptLoop)
	t.Cleanup(func() {
		ln.Close()
		p.set(refuse)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) acceptLoop() {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.handle(conn)
	}
}

// handle treats one accepted connection according to the current mode.
func (p *proxy) handle(client net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case refuse:
		client.Close()
		return
	case blackhole:
		p.conns[client] = true
		return
	}
	upstream, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.conns[client], p.conns[upstream] = true, true
	p.wg.Go(func() { io.Copy(upstream, client); upstream.Close() })
	p.wg.Go(func() { io.Copy(client, upstream); client.Close() })
}

// set switches to mode, cutting every open connection.
func (p *proxy) set(mode proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	for conn := range p.conns {
		conn.Close()
	}
	clear(p.conns)
}

// throughProxy returns the URL of a fresh schema reached through a new
// proxy.
func throughProxy(t *testing.T) (string, *proxy) {
	t.Helper()
	schemaURL := newSchema(t)
	u, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	return u.String(), p
}

// appendWithin calls Append and fails t if it takes longer than limit: a
// Store must answer, not hang, whatever PostgreSQL does.
func appendWithin(t *testing.T, store *postgres.Store, ctx context.Context, limit time.Duration) (partyline.Message, error) {
	t.Helper()
	type result struct {
		msg partyline.Message
		err error
	}
	done := make(chan result, 1)
	go func() {
		msg, err := store.Append(ctx, partyline.Message{Room: "outage", Content: "hello"})
		done <- result{msg, err}
	}()
	select {
	case r := <-done:
		return r.msg, r.err
	case <-time.After(limit):
		t.Fatalf("Append still waiting after %v", limit)
		return partyline.Message{}, nil
	}
}

// appendUntilRecovered retries Append until it succeeds, for at most a
// generous while, and returns the stored message.
func appendUntilRecovered(t *testing.T, store *postgres.Store) partyline.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg, err := appendWithin(t, store, t.Context(), 30*time.Second)
		if err == nil {
			return msg
		}
		if time.Now().After(deadline) {
			t.Fatalf("Append after PostgreSQL came back: still failing: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkUnavailable fails t unless err wraps partyline.ErrUnavailable.
func checkUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, partyline.ErrUnavailable) {
		t.Errorf("%s during the outage: error %v, want one wrapping ErrUnavailable", what, err)
	}
}

func TestOutageRefused(t *testing.T) {
	url, p := throughProxy(t)
	store := open(t, url, 0)
	defer store.Close()
	if _, err := appendWithin(t, store, t.Context(), 30*time.Second); err != nil {
		t.Fatalf("Append before the outage: %v", err)
	}

	p.set(refuse)
	_, err := appendWithin(t, store, context.Background(), 30*time.Second)
	checkUnavailable(t, "Append", err)
	_, err = store.History(t.Context(), "outage", partyline.HistoryQuery{Limit: 10})
	checkUnavailable(t, "History", err)
	_, err = store.LastSeq(t.Context(), "outage")
	checkUnavailable(t, "LastSeq", err)
	checkUnavailable(t, "Ping", store.Ping(t.Context()))

	p.set(forward)
	// Refused connections never carried a transaction, so nothing from the
	// outage was stored and the seqs go on from 1.
	if msg := appendUntilRecovered(t, store); msg.Seq != 2 {
		t.Errorf("first Append after the outage got seq %d, want 2", msg.Seq)
	}
	if err := store.Ping(t.Context()); err != nil {
		t.Errorf("Ping after the outage: %v", err)
	}
}

func TestOutageHanging(t *testing.T) {
	url, p := throughProxy(t)
	store := open(t, url, 0)
	defer store.Close()
	if _, err := appendWithin(t, store, t.Context(), 30*time.Second); err != nil {
		t.Fatalf("Append before the outage: %v", err)
	}

	p.set(blackhole)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err := appendWithin(t, store, ctx, 30*time.Second)
	checkUnavailable(t, "Append with a deadline", err)
	// Without a deadline of its own, Append is bounded by the Store's.
	_, err = appendWithin(t, store, context.Background(), 30*time.Second)
	checkUnavailable(t, "Append without a deadline", err)
	_, err = store.LastSeq(context.Background(), "outage")
	checkUnavailable(t, "LastSeq without a deadline", err)

	p.set(forward)
	msg := appendUntilRecovered(t, store)
	history, err := store.History(t.Context(), "outage", partyline.HistoryQuery{Limit: 100})
	if err != nil {
		t.Fatalf("History after the outage: %v", err)
	}
	// A transaction cut off mid-way may or may not have committed, but the
	// seqs stay gap-free and end with the message just appended.
	for i, m := range history {
		if m.Seq != uint64(i+1) {
			t.Fatalf("History after the outage: seqs %v, want 1…n", seqsOf(history))
		}
	}
	if last := history[len(history)-1]; last.Seq != msg.Seq {
		t.Errorf("History after the outage ends at seq %d, want the recovered Append's %d", last.Seq, msg.Seq)
	}
}

func seqsOf(messages []partyline.Message) []uint64 {
	out := make([]uint64, len(messages))
	for i, m := range messages {
		out[i] = m.Seq
	}
	return out
}
