package bench

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// readBufferSize is a reader goroutine's buffer (without a poller);
	// pollerBufferSize a poller's, shared by its connections.
	readBufferSize   = 2048
	pollerBufferSize = 64 << 10
	dialTimeout      = 10 * time.Second
	dialAttempts     = 3
	// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT: bind the
	// source address now but pick the port at connect time, per 4-tuple.
	ipBindAddressNoPort = 24
)

// dialer opens the bench's WebSocket connections, spreading them over
// loopback source addresses when the server is on loopback.
type dialer struct {
	sources     []*net.Dialer // nil: let the kernel pick the source
	direct      *net.Dialer   // without sources
	prefix      string        // the URL up to the username value
	compression bool          // offer permessage-deflate
}

func newDialer(raw string, sources int, compression bool) (*dialer, error) {
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
	d := &dialer{direct: &net.Dialer{Timeout: dialTimeout}, prefix: u.String() + sep + "username=", compression: compression}
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

// dial opens connection i to rawURL, retrying a few times.
func (d *dialer) dial(ctx context.Context, i int, rawURL string) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	nd, network := d.direct, "tcp"
	if d.sources != nil {
		nd, network = d.sources[i%len(d.sources)], "tcp4"
	}
	for attempt := range dialAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		var c *wsConn
		if c, err = dialWS(ctx, nd, network, u, d.compression); err == nil {
			return c, nil
		}
		if isOutOfFiles(err) {
			return nil, err // retrying cannot help
		}
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
