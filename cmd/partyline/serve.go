package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/httpapi"
	"github.com/partyline/partyline/metrics"
	"github.com/partyline/partyline/web"
)

// serve runs the server until ctx is cancelled, then shuts it down within
// the shutdown grace.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, os.Getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	goredis.SetLogger(redisLogger{log.With("subsystem", "go-redis")})
	b, err := openBackends(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeWithin(backendCloseWait, log, "the backends", b.close)
	var srv *partyline.Server
	m := metrics.New(nil, func() partyline.Stats { return srv.Stats() })
	opts := cfg.options(b, log)
	opts.Metrics = m
	var stopWebhooks func()
	opts.Webhooks, stopWebhooks, err = startWebhooks(cfg, b.store, m, log)
	if err != nil {
		return err
	}
	defer closeWithin(backendCloseWait, log, "the webhook sender", func() error { stopWebhooks(); return nil })
	if opts.Hooks, err = cfg.hooks(log); err != nil {
		return err
	}
	srv, err = partyline.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	httpServer := newHTTPServer(cfg, srv, m.Handler(), log)
	partyline.SendInBatches(cfg.IOUring == "auto")
	if memoryTrimOn(cfg.MemoryTrim, os.Getenv) {
		trimCtx, stopTrim := context.WithCancel(ctx)
		defer stopTrim()
		go trimMemory(trimCtx, &trimPolicy{})
	}
	log.Info("partyline listening", "addr", ln.Addr().String(), "tls", cfg.TLSCert != "",
		"store", b.storeName, "broker", b.brokerName, "auth", authMode(cfg), "version", currentVersion())
	return runUntilDone(ctx, cfg, httpServer, srv, ln, log)
}

// runUntilDone serves on ln until ctx is cancelled or serving fails, then
// drains: no new connections, close 1001 to every client, wait for them.
func runUntilDone(ctx context.Context, cfg *config, httpServer *http.Server, srv *partyline.Server, ln net.Listener, log *slog.Logger) error {
	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			serveErr <- httpServer.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			serveErr <- httpServer.Serve(ln)
		}
	}()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	// Together: the HTTP server stops accepting and waits for its requests,
	// among them POSTs to streams that may wait for the store, while the
	// hub closes the connections it has taken over, streams included.
	hubDone := make(chan error, 1)
	go func() { hubDone <- srv.Shutdown(shutdownCtx) }()
	httpErr := httpServer.Shutdown(shutdownCtx)
	hubErr := <-hubDone
	<-serveErr
	if err := errors.Join(httpErr, hubErr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// backendCloseWait bounds how long the process waits, once the server has
// stopped, for the webhook sender and then the backends to close: a
// database that stopped answering can hold a pool's close for much longer
// (pgx gives its cancel request 15 s), and what it would do is nothing a
// stopping process needs, every acked message being committed already.
const backendCloseWait = time.Second

// closeWithin runs close and waits for it at most wait; what it has not
// done by then is left to the end of the process.
func closeWithin(wait time.Duration, log *slog.Logger, what string, close func() error) {
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Warn("closing "+what+" failed", "err", err)
		}
	case <-time.After(wait):
		log.Warn("closing "+what+" takes too long; exiting without waiting", "waited", wait)
	}
}

// readHeaderTimeout bounds how long a client may take to send its request
// headers, so slowloris clients are cut off. Tests shorten it.
var readHeaderTimeout = 10 * time.Second

// newHTTPServer routes the WebSocket endpoints and the HTTP surface, with
// timeouts that keep slow or idle HTTP clients from piling up.
func newHTTPServer(cfg *config, srv *partyline.Server, metricsHandler http.Handler, log *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	// Every method reaches the Server, which answers those it does not
	// serve with 405 method_not_allowed.
	for _, pattern := range []string{"/ws", "/ws/{room}", "/sse", "/sse/{room}", "POST /sse/{session}"} {
		mux.Handle(pattern, srv)
	}
	mux.Handle("/", web.Handler())
	mux.Handle("GET /metrics", metricsHandler)
	mux.Handle("/api/", httpapi.New(srv, httpapi.Options{APIKey: cfg.APIKey, Logger: log.With("subsystem", "api")}))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := srv.Ready(ctx); err != nil {
			message := strings.ReplaceAll(err.Error(), "\n", "; ") // each backend that does not answer
			partyline.WriteHTTPError(w, &partyline.Error{Code: partyline.CodeUnavailable, Message: message})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ready"}`+"\n")
	})
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// HTTP/1.1 only, over TLS too: WebSocket upgrades and event
		// streams take over their connection, which HTTP/2 cannot hand
		// over.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
}

// options turns the configuration into the Server's options.
func (c *config) options(b *backends, log *slog.Logger) partyline.Options {
	return partyline.Options{
		Store:               b.store,
		Broker:              b.broker,
		Presence:            b.presence,
		Authenticator:       b.auth,
		AllowedOrigins:      c.origins(),
		DefaultRoom:         c.DefaultRoom,
		PingInterval:        c.PingInterval,
		PongWait:            c.PongWait,
		WriteWait:           c.WriteWait,
		IdleTimeout:         c.IdleTimeout,
		MaxMessageSize:      c.MaxMessageSize,
		SendQueue:           c.SendQueue,
		MaxLag:              c.MaxLag,
		WriteDelay:          c.WriteDelay,
		RateLimit:           c.RateLimit,
		RateBurst:           c.RateBurst,
		MaxRooms:            c.MaxRooms,
		PresenceListMax:     c.PresenceListMax,
		MaxConnections:      c.MaxConnections,
		MaxConnectionsPerIP: c.MaxConnectionsPerIP,
		Transports:          c.transports(),
		Compression:         c.Compression == "on",
		CompressionMinSize:  c.CompressionMinSize,
		ServerName:          "partyline/" + currentVersion(),
		Logger:              log,
	}
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redisLogger passes the Redis client's own lines, one per failed dial
// while Redis is down, to slog at debug level: what matters of them reaches
// the log once, as partyline's warnings (SPEC §13: a state change, not
// every attempt).
type redisLogger struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}

func authMode(cfg *config) string {
	if cfg.JWTSecret != "" || len(cfg.JWTPublicKeys.values) > 0 {
		return "jwt"
	}
	return "anonymous"
}
