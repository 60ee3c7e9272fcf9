package clustertest

import (
	"net"
	"sync"
	"testing"
	"time"
)

// proxy is a TCP proxy on loopback in front of a service, for cutting one
// node off from Redis or PostgreSQL while the others keep it: cut closes
// every connection and refuses new ones, restore accepts again. It can also
// hang, as a service that stopped answering: connections stay open, new
// ones are accepted, and no byte goes through either way.
type proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // the accept loop and the copying goroutines

	mu    sync.Mutex // guards the following
	cut   bool
	hung  bool
	conns map[net.Conn]struct{}
}

// startProxy starts a proxy to target (host:port); it stops when t ends.
func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.setCut(true)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut, hung := p.cut, p.hung
		if hung {
			p.conns[client] = struct{}{} // held open, unanswered, until cut
		}
		p.mu.Unlock()
		if cut {
			client.Close()
			continue
		}
		if hung {
			continue
		}
		server, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client], p.conns[server] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(server, client) })
		p.wg.Go(func() { p.pipe(client, server) })
	}
}

// pipe copies from src to dst until either fails, then closes both. While
// the proxy hangs, what it reads waits.
func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.hanging() {
			time.Sleep(10 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// hanging reports whether the proxy hangs and is not cut.
func (p *proxy) hanging() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hung && !p.cut
}

// setHung makes the proxy hang, or go on.
func (p *proxy) setHung(hung bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = hung
}

// setCut cuts the proxy (closing every connection) or restores it.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}
