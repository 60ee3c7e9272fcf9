package redis_test

import (
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy is a TCP proxy on loopback in front of Redis, for outage tests: cut
// drops every connection and stops listening, restore listens again on the
// same address, and freeze makes the current connections silently swallow
// everything, as a dead peer behind a firewall would.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	wg     sync.WaitGroup // accept and copy goroutines

	mu    sync.Mutex // guards the following
	ln    net.Listener
	links []*link
}

// link is one proxied connection.
type link struct {
	client, server net.Conn
	frozen         atomic.Bool
}

// newProxy starts a proxy to target; it is cut when t ends.
func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: target, addr: ln.Addr().String()}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

// serve accepts connections on ln.
func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.connect(ln, c)
		}
	})
}

// connect links client connection c to the target.
func (p *proxy) connect(ln net.Listener, c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	l := &link{client: c, server: s}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln { // cut meanwhile
		c.Close()
		s.Close()
		return
	}
	p.links = append(p.links, l)
	p.wg.Go(func() { l.copy(s, c) })
	p.wg.Go(func() { l.copy(c, s) })
}

// copy copies src to dst until either fails, dropping data while frozen.
func (l *link) copy(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.frozen.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes the listener and every connection, and waits for the
// proxy's goroutines.
func (p *proxy) cut() {
	p.mu.Lock()
	ln, links := p.ln, p.links
	p.ln, p.links = nil, nil
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, l := range links {
		l.client.Close()
		l.server.Close()
	}
	p.wg.Wait()
}

// restore listens again on the proxy's address.
func (p *proxy) restore() {
	p.t.Helper()
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
}

// freeze makes the current connections swallow everything silently; new
// connections work.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		l.frozen.Store(true)
	}
}

// randomHex returns 16 random hex digits.
func randomHex() string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}
