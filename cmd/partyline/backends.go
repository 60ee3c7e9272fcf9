package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/partyline/partyline"
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
}

// openBackends opens what --store, --broker and the JWT settings name.
func openBackends(ctx context.Context, cfg *config) (*backends, error) {
	if strings.HasPrefix(cfg.Broker, "redis://") && !strings.HasPrefix(cfg.Store, "postgres") {
		return nil, fmt.Errorf("store: a cluster (--broker %s) needs a shared store: use --store postgres://…, not %s", cfg.Broker, cfg.Store)
	}
	b := &backends{}
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
		s, err := postgres.Open(ctx, cfg.Store, cfg.HistorySize)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		b.store, b.storeName = s, redactURL(cfg.Store)
	default:
		return fmt.Errorf("store: %q is not memory, sqlite:PATH or postgres://…", cfg.Store)
	}
	b.closers = append(b.closers, b.store.Close)
	return nil
}

func (b *backends) openBroker(ctx context.Context, cfg *config) error {
	switch {
	case cfg.Broker == "memory":
		broker := partyline.NewMemoryBroker()
		b.broker, b.presence, b.brokerName = broker, partyline.NewMemoryPresence(), "memory"
		b.closers = append(b.closers, broker.Close)
	case strings.HasPrefix(cfg.Broker, "redis://"):
		client, err := redis.Open(ctx, cfg.Broker, redis.Options{PresenceTTL: cfg.PresenceTTL})
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		b.broker, b.presence, b.brokerName = client.Broker(), client.Presence(), redactURL(cfg.Broker)
		b.closers = append(b.closers, client.Close)
	default:
		return fmt.Errorf("broker: %q is not memory or redis://host:port/db", cfg.Broker)
	}
	return nil
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
