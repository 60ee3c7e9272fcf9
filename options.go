package partyline

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Defaults of docs/protocol.md §2. A zero Options field means its default.
const (
	DefaultPingInterval   = 54 * time.Second
	DefaultPongWait       = 60 * time.Second
	DefaultWriteWait      = 10 * time.Second
	DefaultMaxMessageSize = 16384
	DefaultSendQueue      = 256
	DefaultMaxLag         = 5 * time.Second
	DefaultRateLimit      = 20
	DefaultRateBurst      = 40
	DefaultMaxRooms       = 100
	DefaultHistorySize    = 1000
	DefaultShutdownGrace  = 10 * time.Second
	// DefaultCompressionMinSize is the smallest server frame compressed
	// when compression is on: below it deflate saves little and costs more.
	DefaultCompressionMinSize = 512
	// DefaultPresenceListMax is the largest room, in online users, whose
	// members get the list of its users: about 6 KB of online_users, and
	// a join storm into it costs each member at most 500 user_joined.
	DefaultPresenceListMax = 500
	// MaxWriteDelay bounds Options.WriteDelay: the delay is there to merge
	// what comes within milliseconds, and a longer one would make every
	// message late.
	MaxWriteDelay = time.Second
)

// Options configures a Server. The zero value serves anonymous clients from
// memory with every limit at its documented default.
type Options struct {
	// Store keeps history and assigns seqs. Default: a memory store keeping
	// DefaultHistorySize messages per room.
	Store Store
	// Broker carries events between nodes. Default: a memory broker.
	Broker Broker
	// Presence tracks who is online. Default: a memory presence.
	Presence Presence
	// Authenticator checks tokens; nil means anonymous mode, where the
	// username comes from the URL.
	Authenticator Authenticator
	// Hooks asks the application's backend who connects and what may
	// happen (docs/protocol.md §11.2); nil asks nothing.
	Hooks Hooks

	// AllowedOrigins lists the browser origins allowed to connect
	// ("https://example.com"), or "*" for any. Empty means the request's own
	// host only. Requests without an Origin header are always allowed.
	AllowedOrigins []string
	// DefaultRoom is joined by every connection whose URL names no room.
	DefaultRoom string

	// PingInterval, PongWait and WriteWait drive heartbeats (§5.6): each
	// connection is pinged once per PingInterval, and dropped at its ping
	// turn once nothing has come from it for PongWait.
	PingInterval, PongWait, WriteWait time.Duration
	// IdleTimeout closes a connection that sends no message for this long;
	// zero means never.
	IdleTimeout time.Duration
	// MaxMessageSize is the largest inbound message in bytes (close 1009).
	MaxMessageSize int64
	// SendQueue is the outbound queue length per connection; a connection
	// whose queue overflows is closed with 4009.
	SendQueue int
	// MaxLag is how long the oldest byte not yet delivered to a connection
	// may wait, in its queue or unsent in the kernel, before the connection
	// is evicted with 4009 as a slow consumer; it can resume with since.
	// Default DefaultMaxLag; negative turns the rule off, leaving only
	// SendQueue.
	MaxLag time.Duration
	// WriteDelay is how long a connection's first queued frame waits for
	// more before it is written: what is queued meanwhile leaves in the
	// same frame and write. Zero, the default, writes at once. In a room
	// of 1,000 receiving 100 messages a second, 10 ms cut the CPU per
	// message of the server and of its clients by a third or more, for
	// 5 ms more at the median (docs/performance.md). A connection whose
	// queue fills halfway meanwhile is written at once, so the delay never
	// makes it a slow consumer. At most MaxWriteDelay.
	WriteDelay time.Duration
	// RateLimit is the sustained inbound messages per second per
	// connection, RateBurst the bucket size. A negative RateLimit disables
	// rate limiting.
	RateLimit float64
	RateBurst int
	// MaxRooms is the most rooms one connection may be in.
	MaxRooms int
	// PresenceListMax is the largest room, in online users, that is told
	// who is in it (docs/protocol.md §5.5): online_users lists the users,
	// and every arrival and departure is announced at once with
	// user_joined or user_left. A room with more users is large:
	// online_users carries only their count, and each node announces the
	// arrivals and departures it sees in one presence_diff a second.
	// Default DefaultPresenceListMax; negative: no room is large.
	PresenceListMax int
	// MaxConnections and MaxConnectionsPerIP refuse connections beyond them
	// with 429; zero means no limit.
	MaxConnections, MaxConnectionsPerIP int
	// Compression offers permessage-deflate (RFC 7692) to WebSocket
	// clients that ask for it (docs/protocol.md §12.2). Server frames of
	// at least CompressionMinSize bytes (default
	// DefaultCompressionMinSize) are then compressed, each once for all
	// its compressed subscribers.
	Compression        bool
	CompressionMinSize int
	// Transports names the ways in that are served: TransportWebSocket
	// (/ws) and TransportSSE (/sse, docs/protocol.md §12.1). Empty means
	// both; a request for another is answered 404.
	Transports []string

	// ServerName is sent in the welcome frame, e.g. "partyline/1.0.0".
	ServerName string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// Metrics observes the server's traffic; nil observes nothing.
	Metrics Metrics

	// Webhooks says which events are recorded for the application's
	// backend (docs/protocol.md §11.1); the zero value records none.
	Webhooks WebhookOptions
}

// withDefaults returns a copy of o with every zero field set to its default,
// or an error naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	setDuration(&o.PingInterval, DefaultPingInterval)
	setDuration(&o.PongWait, DefaultPongWait)
	setDuration(&o.WriteWait, DefaultWriteWait)
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	setInt(&o.SendQueue, DefaultSendQueue)
	setDuration(&o.MaxLag, DefaultMaxLag)
	if o.RateLimit == 0 {
		o.RateLimit = DefaultRateLimit
	}
	setInt(&o.RateBurst, DefaultRateBurst)
	setInt(&o.MaxRooms, DefaultMaxRooms)
	setInt(&o.PresenceListMax, DefaultPresenceListMax)
	setInt(&o.CompressionMinSize, DefaultCompressionMinSize)
	if o.ServerName == "" {
		o.ServerName = "partyline"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	switch {
	case o.PingInterval < 0:
		return o, fmt.Errorf("ping-interval must be positive, got %s", o.PingInterval)
	case o.PongWait <= o.PingInterval:
		return o, fmt.Errorf("pong-wait (%s) must be longer than ping-interval (%s)", o.PongWait, o.PingInterval)
	case o.WriteWait < 0:
		return o, fmt.Errorf("write-wait must be positive, got %s", o.WriteWait)
	case o.WriteDelay < 0 || o.WriteDelay > MaxWriteDelay:
		return o, fmt.Errorf("write-delay must be between 0 and %s, got %s", MaxWriteDelay, o.WriteDelay)
	case o.IdleTimeout < 0:
		return o, fmt.Errorf("idle-timeout must not be negative, got %s", o.IdleTimeout)
	case o.MaxMessageSize < 0:
		return o, fmt.Errorf("max-message-size must be positive, got %d", o.MaxMessageSize)
	case o.SendQueue < 0:
		return o, fmt.Errorf("send-queue must be positive, got %d", o.SendQueue)
	case o.RateBurst < 0:
		return o, fmt.Errorf("rate-burst must be positive, got %d", o.RateBurst)
	case o.MaxRooms < 0:
		return o, fmt.Errorf("max-rooms must be positive, got %d", o.MaxRooms)
	case o.CompressionMinSize < 0:
		return o, fmt.Errorf("compression-min-size must be positive, got %d", o.CompressionMinSize)
	case o.MaxConnections < 0:
		return o, fmt.Errorf("max-connections must not be negative, got %d", o.MaxConnections)
	case o.MaxConnectionsPerIP < 0:
		return o, fmt.Errorf("max-connections-per-ip must not be negative, got %d", o.MaxConnectionsPerIP)
	case math.IsNaN(o.RateLimit) || math.IsInf(o.RateLimit, 0):
		return o, fmt.Errorf("rate-limit must be a number of messages a second, got %v", o.RateLimit)
	case o.DefaultRoom != "" && !ValidRoom(o.DefaultRoom):
		return o, fmt.Errorf("default-room %q is not a valid room name", o.DefaultRoom)
	}
	if len(o.Transports) == 0 {
		o.Transports = []string{TransportWebSocket, TransportSSE}
	}
	for _, t := range o.Transports {
		if t != TransportWebSocket && t != TransportSSE {
			return o, fmt.Errorf("transports: unknown transport %q (want %s or %s)", t, TransportWebSocket, TransportSSE)
		}
	}
	return o, nil
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setInt(n *int, def int) {
	if *n == 0 {
		*n = def
	}
}
