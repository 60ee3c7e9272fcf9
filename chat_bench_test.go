package partyline_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/wstest"
	"github.com/partyline/partyline/sqlite"
)

// BenchmarkChatDurable measures the end-to-end chat rate of one room with
// the durable SQLite store: real WebSocket clients over loopback each send a
// chat and wait for its ack (which comes only after the commit), while every
// client also receives every message.
func BenchmarkChatDurable(b *testing.B) {
	for _, senders := range []int{1, 16} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			store, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Keep: 1000})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			ts := startServer(b, partyline.Options{Store: store, RateLimit: -1, SendQueue: 1 << 16})
			clients := make([]*wstest.Client, senders)
			for i := range clients {
				clients[i] = ts.dial(b, fmt.Sprintf("/ws?username=u%d&room=bench", i))
			}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, c := range clients {
				n := b.N / senders
				if i < b.N%senders {
					n++
				}
				wg.Go(func() { sendAndAwaitAcks(b, c, n) })
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// sendAndAwaitAcks sends n chats one at a time, each after the previous ack.
func sendAndAwaitAcks(b *testing.B, c *wstest.Client, n int) {
	for i := range n {
		c.Conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"chat","content":"m%d","id":%d}`, i, i))
		for {
			f, err := c.Read(waitTime)
			if err != nil {
				b.Errorf("read: %v", err)
				return
			}
			if f.Str("type") == "ack" {
				break
			}
		}
	}
}
