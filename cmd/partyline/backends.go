package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/deferred"
	"github.com/partyline/partyline/jwtauth"
	"github.com/partyline/partyline/postgres"
	"github.com/partyline/partyline/redis"
	"github.com/partyline/partyline/sqlite"
)

// backends are the Store, Broker, Presence and Authenticator chosen by the
// configuration, and how to close them.
type backends struct {
	store      partyline.Store
	broker     partyline.Broker
	presence   partyline.Presence
	auth       partyline.Authenticator
	storeName  string
	brokerName string
	closers    []func() error
	log        *slog.Logger
}

// openBackends opens what --store, --broker and the JWT settings name.
// PostgreSQL and Redis need not answer yet (SPEC §13): while they cannot
// be reached, the server runs with stand-ins that answer unavailable and
// connects in the background. Any other failure stops start-up.
func openBackends(ctx context.Context, cfg *config, log *slog.Logger) (*backends, error) {
	if strings.HasPrefix(cfg.Broker, "redis://") && !strings.HasPrefix(cfg.Store, "postgres") {
		return nil, fmt.Errorf("store: a cluster (--broker %s) needs a shared store: use --store postgres://…, not %s", cfg.Broker, cfg.Store)
	}
	b := &backends{log: log}
	for _, open := range []func(context.Context, *config) error{b.openAuth, b.openStore, b.openBroker} {
		if err := open(ctx, cfg); err != nil {
			b.close()
			return nil, err
		}
	}
	return b, nil
}

func (b *backends) openStore(ctx context.Context, cfg *config) error {
	switch {
	case cfg.Store == "memory":
		b.store, b.storeName = partyline.NewMemoryStore(cfg.HistorySize), "memory"
	case strings.HasPrefix(cfg.Store, "sqlite:"):
		path, query, _ := strings.Cut(strings.TrimPrefix(cfg.Store, "sqlite:"), "?")
		if query != "" && query != "sync=full" {
			return fmt.Errorf("store: %q: the only sqlite option is ?sync=full", cfg.Store)
		}
		s, err := sqlite.Open(ctx, path, sqlite.Options{Keep: cfg.HistorySize, FullSync: query == "sync=full"})
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		b.store, b.storeName = s, "sqlite:"+path
	case strings.HasPrefix(cfg.Store, "postgres://") || strings.HasPrefix(cfg.Store, "postgresql://"):
		return b.openPostgres(ctx, cfg)
	default:
		return fmt.Errorf("store: %q is not memory, sqlite:PATH or postgres://…", cfg.Store)
	}
	b.closers = append(b.closers, b.store.Close)
	return nil
}

// openPostgres opens the PostgreSQL store, at once or, while PostgreSQL
// cannot be reached, in the background.
func (b *backends) openPostgres(ctx context.Context, cfg *config) error {
	store := deferred.NewStore()
	retrier, err := deferred.Open(ctx, b.retryOptions("store"), func(ctx context.Context) (io.Closer, error) {
		s, err := postgres.Open(ctx, cfg.Store, cfg.HistorySize)
		if err != nil {
			return nil, err
		}
		store.Set(s)
		return s, nil
	}, store)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	b.store, b.storeName = store, redactURL(cfg.Store)
	b.closers = append(b.closers, retrier.Close) // it closes the store it opened
	return nil
}

func (b *backends) openBroker(ctx context.Context, cfg *config) error {
	switch {
	case cfg.Broker == "memory":
		broker := partyline.NewMemoryBroker()
		b.broker, b.presence, b.brokerName = broker, partyline.NewMemoryPresence(), "memory"
		b.closers = append(b.closers, broker.Close)
	case strings.HasPrefix(cfg.Broker, "redis://"):
		return b.openRedis(ctx, cfg)
	default:
		return fmt.Errorf("broker: %q is not memory or redis://host:port/db", cfg.Broker)
	}
	return nil
}

// openRedis opens the Redis broker and presence, at once or, while Redis
// cannot be reached, in the background.
func (b *backends) openRedis(ctx context.Context, cfg *config) error {
	broker, presence := deferred.NewBroker(), deferred.NewPresence()
	retrier, err := deferred.Open(ctx, b.retryOptions("broker"), func(ctx context.Context) (io.Closer, error) {
		client, err := redis.Open(ctx, cfg.Broker, redis.Options{PresenceTTL: cfg.PresenceTTL})
		if err != nil {
			return nil, err
		}
		if err := broker.Set(client.Broker()); err != nil {
			client.Close()
			return nil, err
		}
		presence.Set(client.Presence())
		return client, nil
	}, broker, presence)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b.broker, b.presence, b.brokerName = broker, presence, redactURL(cfg.Broker)
	b.closers = append(b.closers, retrier.Close) // it closes the client, whose broker and presence these are
	return nil
}

// retryOptions says how to keep connecting to a backend that cannot be
// reached at start-up.
func (b *backends) retryOptions(name string) deferred.Options {
	return deferred.Options{Name: name, Logger: b.log.With("subsystem", name)}
}

// openAuth switches on JWT mode when a secret or a public key is given.
func (b *backends) openAuth(ctx context.Context, cfg *config) error {
	if cfg.JWTSecret == "" && len(cfg.JWTPublicKeys.values) == 0 {
		return nil
	}
	keys, err := jwtauth.LoadKeyFiles(cfg.JWTPublicKeys.values)
	if err != nil {
		return fmt.Errorf("jwt-public-key: %w", err)
	}
	v, err := jwtauth.New(jwtauth.Config{
		Secret:     []byte(cfg.JWTSecret),
		PublicKeys: keys,
		Issuer:     cfg.JWTIssuer,
		Audience:   cfg.JWTAudience,
	})
	if err != nil {
		return fmt.Errorf("jwt: %w", err)
	}
	b.auth = v
	return nil
}

// close closes what was opened, newest first.
func (b *backends) close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	return errors.Join(errs...)
}

// redactURL hides a password in a backend URL for logs.
func redactURL(raw string) string {
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		if scheme := strings.Index(raw, "://"); scheme >= 0 && scheme < at {
			return raw[:scheme+3] + "…" + raw[at:]
		}
	}
	return raw
}
