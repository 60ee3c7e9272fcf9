package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/partyline/partyline/internal/ws"
)

// Write deadlines.
const (
	chatWriteTimeout  = 10 * time.Second
	pongWriteTimeout  = 250 * time.Millisecond // written by a poller, which waits meanwhile
	closeWriteTimeout = 100 * time.Millisecond
)

// acceptGUID is RFC 6455's constant for Sec-WebSocket-Accept.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// wsConn is the client end of one WebSocket connection. The bench does the
// handshake itself so that it owns every byte the server sends after it:
// pending holds those read with the handshake's answer. A poller then takes
// the socket from the runtime (detach) and reads it itself.
//
// Reads are the business of one goroutine at a time (a poller, or the
// connection's reader); writes may come from several — the publisher, the
// reader's pongs, the final close — and are serialized by mu.
type wsConn struct {
	raw     syscall.RawConn // the TCP socket while conn holds it; nil over TLS, which must be read through conn
	pending []byte          // bytes after the handshake's answer, to parse before reading
	mask    [4]byte
	deflate bool // the server accepted permessage-deflate (inflate.go)

	mu   sync.Mutex // guards the following and serializes writes
	conn net.Conn   // nil once detached
	fd   int        // the socket once detached, -1 before and once closed
	out  []byte     // the frame being written, reused
}

// dialWS opens a WebSocket connection to u (ws or wss) with nd over
// network ("tcp" or "tcp4"), within dialTimeout, offering permessage-deflate
// if compression is set.
func dialWS(ctx context.Context, nd *net.Dialer, network string, u *url.URL, compression bool) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "wss" {
			port = "443"
		}
	}
	conn, err := nd.DialContext(ctx, network, net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, err
	}
	c := &wsConn{conn: conn, fd: -1}
	if err := c.open(ctx, u, compression); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// open does the TLS handshake for wss, then the WebSocket handshake.
func (c *wsConn) open(ctx context.Context, u *url.URL, compression bool) error {
	if _, err := rand.Read(c.mask[:]); err != nil {
		return err
	}
	if u.Scheme == "wss" {
		tc := tls.Client(c.conn, &tls.Config{ServerName: u.Hostname()})
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		c.conn = tc
	} else if tcp, ok := c.conn.(*net.TCPConn); ok {
		raw, err := tcp.SyscallConn()
		if err != nil {
			return err
		}
		c.raw = raw
	}
	if d, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(d)
	}
	if err := c.handshake(u, compression); err != nil {
		return err
	}
	return c.conn.SetDeadline(time.Time{})
}

// handshake sends the opening handshake (RFC 6455 §4.1), offering
// permessage-deflate if compression is set, and checks the answer, keeping
// the bytes that followed it in pending.
func (c *wsConn) handshake(u *url.URL, compression bool) error {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n"
	if compression {
		req += "Sec-WebSocket-Extensions: " + deflateOffer + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(c.conn, req); err != nil {
		return err
	}
	br := bufio.NewReaderSize(c.conn, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("bench: handshake: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("bench: bad handshake: HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptKey(key); got != want {
		return fmt.Errorf("bench: bad handshake: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if c.deflate, err = acceptedDeflate(resp.Header, compression); err != nil {
		return err
	}
	if n := br.Buffered(); n > 0 {
		rest, _ := br.Peek(n)
		c.pending = append([]byte(nil), rest...)
	}
	return nil
}

// acceptKey is the Sec-WebSocket-Accept the server must answer key with.
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// writeFrame writes one masked frame of type op carrying payload, within
// timeout. It does not allocate once the connection's frame buffer has
// grown to the size of its frames.
func (c *wsConn) writeFrame(op byte, payload []byte, timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = ws.AppendFrame(c.out[:0], ws.FinBit|op, payload, &c.mask)
	deadline := time.Now().Add(timeout)
	switch {
	case c.fd >= 0:
		return writeFD(c.fd, c.out, deadline)
	case c.conn == nil:
		return net.ErrClosed
	}
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := c.conn.Write(c.out)
	return err
}

// Read reads from the connection through the runtime: the reader
// goroutine's way, and the only one over TLS. Only before detach; once
// closeConn has run it returns net.ErrClosed.
func (c *wsConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return 0, net.ErrClosed
	}
	return conn.Read(b)
}

// closeConn closes the connection if it is still the runtime's; a
// detached socket stays open for closeFD.
func (c *wsConn) closeConn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// closeFD closes a detached socket. Its poller must have stopped: the
// descriptor's number may be reused at once.
func (c *wsConn) closeFD() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd >= 0 {
		closeFD(c.fd)
		c.fd = -1
	}
}

// closeError is a close frame from the server.
type closeError struct {
	code   int // ws.CloseNoStatus if the frame carried none
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("bench: server closed the connection: %d %s", e.code, e.reason)
}

// isOutOfFiles reports whether err says the process or system is out of
// file descriptors.
func isOutOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
