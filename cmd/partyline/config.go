package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/hook"
)

// config holds every setting of docs/protocol.md §2.
type config struct {
	Addr                string
	Store               string
	Broker              string
	JWTSecret           string
	JWTPublicKeys       listFlag
	JWTIssuer           string
	JWTAudience         string
	APIKey              string
	AllowedOrigins      string
	PingInterval        time.Duration
	PongWait            time.Duration
	WriteWait           time.Duration
	MaxMessageSize      int64
	SendQueue           int
	MaxLag              time.Duration
	WriteDelay          time.Duration
	RateLimit           float64
	RateBurst           int
	MaxRooms            int
	DefaultRoom         string
	MaxConnections      int
	MaxConnectionsPerIP int
	Transports          string
	Compression         string
	CompressionMinSize  int
	HistorySize         int
	PresenceTTL         time.Duration
	PresenceListMax     int
	IdleTimeout         time.Duration
	ShutdownGrace       time.Duration
	TLSCert             string
	TLSKey              string
	LogLevel            string
	LogFormat           string
	ConfigFile          string
	WebhookURLs         listFlag
	WebhookSecret       string
	WebhookEvents       string
	WebhookLeaveDelay   time.Duration
	WebhookTimeout      time.Duration
	WebhookRetryFor     time.Duration
	HookConnect         string
	HookJoin            string
	HookPublish         string
	HookHeaders         string
	HookTimeout         time.Duration
	MemoryTrim          string
	IOUring             string
}

// flagSet declares the settings with their defaults on a new FlagSet.
func (c *config) flagSet(output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("partyline", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.Addr, "addr", ":8080", "listen address")
	fs.StringVar(&c.Store, "store", "sqlite:./partyline.db", "message store: sqlite:PATH, memory or postgres://…")
	fs.StringVar(&c.Broker, "broker", "memory", "event broker: memory or redis://host:port/db")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret; enables JWT mode")
	fs.Var(&c.JWTPublicKeys, "jwt-public-key", "PEM public key file (RS256, ES256, EdDSA); may repeat; enables JWT mode")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "required iss claim")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "required aud claim")
	fs.StringVar(&c.APIKey, "api-key", "", "bearer key for /api/; without one /api/ answers loopback callers only")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated browser origins, or *; default: the request's own host")
	fs.DurationVar(&c.PingInterval, "ping-interval", partyline.DefaultPingInterval, "how often the server pings")
	fs.DurationVar(&c.PongWait, "pong-wait", partyline.DefaultPongWait, "how long a pong may take")
	fs.DurationVar(&c.WriteWait, "write-wait", partyline.DefaultWriteWait, "how long a write may take")
	fs.Int64Var(&c.MaxMessageSize, "max-message-size", partyline.DefaultMaxMessageSize, "largest inbound message in bytes (close 1009)")
	fs.IntVar(&c.SendQueue, "send-queue", partyline.DefaultSendQueue, "outbound queue per connection, in messages")
	fs.DurationVar(&c.MaxLag, "max-lag", partyline.DefaultMaxLag, "evict (4009) a connection whose oldest undelivered message has waited this long, queued or in the kernel (negative: off)")
	fs.DurationVar(&c.WriteDelay, "write-delay", 0, "how long a connection's first queued message waits for more to share its write (0: none)")
	fs.Float64Var(&c.RateLimit, "rate-limit", partyline.DefaultRateLimit, "messages per second per connection (negative: off)")
	fs.IntVar(&c.RateBurst, "rate-burst", partyline.DefaultRateBurst, "rate limit burst")
	fs.IntVar(&c.MaxRooms, "max-rooms", partyline.DefaultMaxRooms, "rooms per connection")
	fs.StringVar(&c.DefaultRoom, "default-room", "", "room joined by connections whose URL names none")
	fs.IntVar(&c.MaxConnections, "max-connections", 0, "connections in total (0: no limit)")
	fs.IntVar(&c.MaxConnectionsPerIP, "max-connections-per-ip", 0, "connections per client IP (0: no limit)")
	fs.StringVar(&c.Compression, "compression", "off", "permessage-deflate for WebSocket clients that offer it: off or on")
	fs.IntVar(&c.CompressionMinSize, "compression-min-size", partyline.DefaultCompressionMinSize, "smallest server frame compressed, in bytes")
	fs.StringVar(&c.Transports, "transports", "websocket,sse", "comma-separated transports served: websocket (/ws), sse (/sse)")
	fs.IntVar(&c.HistorySize, "history-size", partyline.DefaultHistorySize, "newest messages kept per room (0: unlimited)")
	fs.DurationVar(&c.PresenceTTL, "presence-ttl", 60*time.Second, "how long a dead node's users linger in a cluster")
	fs.IntVar(&c.PresenceListMax, "presence-list-max", partyline.DefaultPresenceListMax, "largest room, in online users, told its users' names; a larger room gets counts and a presence_diff per second (negative: no limit)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 0, "close connections that send nothing for this long (0: off)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", partyline.DefaultShutdownGrace, "how long shutdown may take")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file: serve HTTPS and WSS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS key file")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.ConfigFile, "config", "", "JSON config file whose keys are these flag names")
	fs.Var(&c.WebhookURLs, "webhook-url", "URL told every event by webhook (docs/protocol.md §11.1); may repeat")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", "", "secret signing webhook and hook requests (Partyline-Signature)")
	fs.StringVar(&c.WebhookEvents, "webhook-events", "all", "comma-separated webhook event types to send, or all")
	fs.DurationVar(&c.WebhookLeaveDelay, "webhook-leave-delay", partyline.DefaultLeaveDelay, "how long user_left, user_offline and room_vacated wait for a return")
	fs.DurationVar(&c.WebhookTimeout, "webhook-timeout", 5*time.Second, "how long one webhook delivery attempt may take")
	fs.DurationVar(&c.WebhookRetryFor, "webhook-retry-for", 24*time.Hour, "how long an undelivered webhook event is retried")
	fs.StringVar(&c.HookConnect, "hook-connect", "", "URL asked who connects, before each upgrade (docs/protocol.md §11.2)")
	fs.StringVar(&c.HookJoin, "hook-join", "", "URL asked before each join")
	fs.StringVar(&c.HookPublish, "hook-publish", "", "URL asked before each chat is stored; may rewrite it")
	fs.StringVar(&c.HookHeaders, "hook-headers", "Cookie,Authorization", "request headers passed to the connect hook, comma-separated")
	fs.DurationVar(&c.HookTimeout, "hook-timeout", hook.DefaultTimeout, "how long a hook may take to answer; then the action is refused")
	fs.StringVar(&c.MemoryTrim, "memory-trim", "auto", "give the heap a burst of work left free back to the system once the server is quiet: auto (on unless GOGC or GOMEMLIMIT is set), on or off")
	fs.StringVar(&c.IOUring, "io-uring", "auto", "make sends to many clients in batches through io_uring: auto (where Linux allows it) or off")
	return fs
}

// loadConfig reads the settings: flags win over PARTYLINE_* environment
// variables, which win over the config file, which wins over the defaults.
// With --help it writes the settings to help and returns flag.ErrHelp; a
// bad flag is an error of one line, without the settings.
func loadConfig(args []string, getenv func(string) string, help io.Writer) (*config, error) {
	c := &config{}
	fs := c.flagSet(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(help)
			fs.Usage()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	file := c.ConfigFile
	if file == "" {
		file = getenv("PARTYLINE_CONFIG")
	}
	// Apply the lower layers to a fresh set, then the flags again on top.
	c = &config{}
	fs = c.flagSet(io.Discard)
	if file != "" {
		if err := applyFile(fs, file); err != nil {
			return nil, err
		}
	}
	if err := applyEnv(fs, getenv, explicit); err != nil {
		return nil, err
	}
	c.JWTPublicKeys.fresh = true
	c.WebhookURLs.fresh = true
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return c, c.check()
}

// applyFile sets flags from a JSON object whose keys are flag names.
func applyFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// Numbers are kept as written: a float64 would print 1048576 as 1.048576e+06.
	var values map[string]any
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	if err := decoder.Decode(&values); err != nil {
		return fmt.Errorf("config: %s: not a JSON object: %w", path, err)
	}
	if _, err := decoder.Token(); err != io.EOF {
		return fmt.Errorf("config: %s: not a JSON object: more follows it", path)
	}
	for name, value := range values {
		f := fs.Lookup(name)
		if f == nil || name == "config" {
			return fmt.Errorf("config: %s: unknown setting %q", path, name)
		}
		for _, text := range fileValues(value) {
			if err := fs.Set(name, text); err != nil {
				return fmt.Errorf("config: %s: %s: %w", path, name, err)
			}
		}
	}
	return nil
}

// fileValues renders a JSON value as flag text; arrays set a flag repeatedly.
func fileValues(value any) []string {
	switch v := value.(type) {
	case []any:
		var texts []string
		for _, item := range v {
			texts = append(texts, fileValues(item)...)
		}
		return texts
	case string:
		return []string{v}
	case json.Number:
		return []string{v.String()}
	default:
		return []string{fmt.Sprint(v)}
	}
}

// applyEnv sets every flag not given on the command line from its
// PARTYLINE_* variable, if set.
func applyEnv(fs *flag.FlagSet, getenv func(string) string, explicit map[string]bool) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "PARTYLINE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		value := getenv(name)
		if value == "" || explicit[f.Name] || err != nil || f.Name == "config" {
			return
		}
		if lf, ok := f.Value.(*listFlag); ok {
			lf.fresh = true
			for _, item := range strings.Split(value, ",") {
				if e := lf.Set(strings.TrimSpace(item)); e != nil {
					err = e
				}
			}
			return
		}
		if e := fs.Set(f.Name, value); e != nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
	})
	return err
}

// check validates what the flag types cannot.
func (c *config) check() error {
	switch {
	case c.LogLevel != "debug" && c.LogLevel != "info" && c.LogLevel != "warn" && c.LogLevel != "error":
		return fmt.Errorf("log-level must be debug, info, warn or error, got %q", c.LogLevel)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("log-format must be text or json, got %q", c.LogFormat)
	case c.Compression != "off" && c.Compression != "on":
		return fmt.Errorf("compression must be off or on, got %q", c.Compression)
	case c.MemoryTrim != "auto" && c.MemoryTrim != "on" && c.MemoryTrim != "off":
		return fmt.Errorf("memory-trim must be auto, on or off, got %q", c.MemoryTrim)
	case c.IOUring != "auto" && c.IOUring != "off":
		return fmt.Errorf("io-uring must be auto or off, got %q", c.IOUring)
	case c.CompressionMinSize < 0:
		return fmt.Errorf("compression-min-size must not be negative, got %d", c.CompressionMinSize)
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("tls-cert and tls-key must be given together")
	case c.HistorySize < 0:
		return fmt.Errorf("history-size must not be negative, got %d", c.HistorySize)
	case c.PresenceTTL <= 0:
		return fmt.Errorf("presence-ttl must be positive, got %s", c.PresenceTTL)
	case c.PresenceListMax == 0:
		return errors.New("presence-list-max must be positive, or negative for no limit, got 0")
	case c.ShutdownGrace <= 0:
		return fmt.Errorf("shutdown-grace must be positive, got %s", c.ShutdownGrace)
	}
	for _, t := range c.transports() {
		if t != partyline.TransportWebSocket && t != partyline.TransportSSE {
			return fmt.Errorf("transports: %q is none of websocket, sse", t)
		}
	}
	return c.checkWebhooks()
}

// transports splits --transports.
func (c *config) transports() []string {
	var list []string
	for _, t := range strings.Split(c.Transports, ",") {
		if t = strings.TrimSpace(t); t != "" {
			list = append(list, t)
		}
	}
	return list
}

// origins splits --allowed-origins.
func (c *config) origins() []string {
	var list []string
	for _, o := range strings.Split(c.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			list = append(list, o)
		}
	}
	return list
}

// listFlag is a repeatable string flag. A new configuration layer replaces
// the list rather than adding to it.
type listFlag struct {
	values []string
	fresh  bool
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(v string) error {
	if l.fresh {
		l.values, l.fresh = nil, false
	}
	l.values = append(l.values, v)
	return nil
}
