package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	// readBufferSize is gorilla's per-connection bufio.Reader; scanBufferSize
	// the buffer messages are read into (reads at least as large bypass the
	// bufio.Reader). Small, so the bench holds 20k connections in ~100 MB.
	readBufferSize = 1024
	scanBufferSize = 2048
	// writeBufferSize is a publisher's own frame buffer; other connections
	// borrow one from a pool for their rare data writes.
	writeBufferSize = 512
	dialTimeout     = 10 * time.Second
	dialAttempts    = 3
	// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT: bind the
	// source address now but pick the port at connect time, per 4-tuple.
	ipBindAddressNoPort = 24
)

// dialer opens the bench's WebSocket connections, spreading them over
// loopback source addresses when the server is on loopback.
type dialer struct {
	base    websocket.Dialer
	sources []*net.Dialer // nil: let the kernel pick the source
	prefix  string        // the URL up to the username value
}

func newDialer(raw string, sources int) (*dialer, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bench: --url: %w", err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/ws"
	}
	q := u.Query()
	q.Del("username")
	q.Del("room")
	u.RawQuery = q.Encode()
	sep := "?"
	if u.RawQuery != "" {
		sep = "&"
	}
	d := &dialer{
		base: websocket.Dialer{
			HandshakeTimeout: dialTimeout,
			ReadBufferSize:   readBufferSize,
			WriteBufferSize:  writeBufferSize,
			WriteBufferPool:  new(sync.Pool),
		},
		prefix: u.String() + sep + "username=",
	}
	if isLoopback(u.Hostname()) {
		d.sources = sourceDialers(sources)
	}
	return d, nil
}

// isLoopback reports whether host is an IPv4 loopback address or localhost.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.To4() != nil && ip.IsLoopback()
}

// sourceDialers returns one net.Dialer per source 127.0.0.1 … 127.0.0.n.
// Each source address has its own ~28k ephemeral ports towards the server.
func sourceDialers(n int) []*net.Dialer {
	ds := make([]*net.Dialer, n)
	for i := range ds {
		ds[i] = &net.Dialer{
			Timeout:   dialTimeout,
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))},
			Control:   bindNoPort,
		}
	}
	return ds
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT, best effort.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	return c.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
}

// url returns the connection URL for username in room ("" for none).
func (d *dialer) url(username, room string) string {
	var b strings.Builder
	b.WriteString(d.prefix)
	b.WriteString(url.QueryEscape(username))
	if room != "" {
		b.WriteString("&room=")
		b.WriteString(url.QueryEscape(room))
	}
	return b.String()
}

// dial opens connection i, retrying a few times.
func (d *dialer) dial(ctx context.Context, i int, rawURL string, publisher bool) (*websocket.Conn, error) {
	wd := d.base
	if publisher {
		wd.WriteBufferPool = nil
	}
	if d.sources != nil {
		nd := d.sources[i%len(d.sources)]
		wd.NetDialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return nd.DialContext(ctx, "tcp4", addr)
		}
	}
	var err error
	for attempt := range dialAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		var ws *websocket.Conn
		if ws, err = dialOnce(ctx, &wd, rawURL); err == nil {
			return ws, nil
		}
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			return nil, err // out of descriptors: retrying cannot help
		}
	}
	return nil, err
}

func dialOnce(ctx context.Context, wd *websocket.Dialer, rawURL string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ws, resp, err := wd.DialContext(ctx, rawURL, nil)
	if err == nil {
		return ws, nil
	}
	if resp != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		return nil, fmt.Errorf("%w: HTTP %d %s", err, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil, err
}

// username returns the name of connection i.
func username(i, users int) string {
	if users > 0 {
		i %= users
	}
	return "b" + strconv.Itoa(i)
}
