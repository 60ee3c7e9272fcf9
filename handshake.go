package partyline

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
)

// errWritesAreOurs is what gorilla/websocket gets when it tries to write on
// its own after the handshake (it answers malformed frames with a close
// frame from the reader goroutine): writer.go is the only writer, so such a
// write could cut into a frame being written or block a room's fan-out.
var errWritesAreOurs = errors.New("partyline: the connection's writes go through its writer")

// hijacker hands gorilla/websocket a connection whose writes stop working
// once the handshake is done, and keeps the real one for writer.go.
type hijacker struct {
	http.ResponseWriter
	conn *handshakeConn
}

// Hijack implements http.Hijacker.
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := h.ResponseWriter.(http.Hijacker).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &handshakeConn{Conn: conn}
	return h.conn, rw, nil
}

// handshakeConn lets its writes through until done is set.
type handshakeConn struct {
	net.Conn
	done atomic.Bool
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	if c.done.Load() {
		return 0, errWritesAreOurs
	}
	return c.Conn.Write(p)
}
