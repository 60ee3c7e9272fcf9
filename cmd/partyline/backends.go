package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/partyline/partyline"
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
	b := &backends{}
	if err := b.openStore(ctx, cfg); err != nil {
		return nil, err
	}
	if err := b.openBroker(ctx, cfg); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *backends) openStore(ctx context.Context, cfg *config) error {
	switch {
	case cfg.Store == "memory":
		b.store, b.storeName = partyline.NewMemoryStore(cfg.HistorySize), "memory"
	case strings.HasPrefix(cfg.Store, "sqlite:"):
		// Until the SQLite store lands, the embedded default keeps memory.
		b.store, b.storeName = partyline.NewMemoryStore(cfg.HistorySize), "memory"
	default:
		return fmt.Errorf("store: %q is not memory, sqlite:PATH or postgres://…", cfg.Store)
	}
	b.closers = append(b.closers, b.store.Close)
	return nil
}

func (b *backends) openBroker(ctx context.Context, cfg *config) error {
	switch {
	case cfg.Broker == "memory":
		b.broker, b.presence, b.brokerName = partyline.NewMemoryBroker(), partyline.NewMemoryPresence(), "memory"
	default:
		return fmt.Errorf("broker: %q is not memory or redis://host:port/db", cfg.Broker)
	}
	b.closers = append(b.closers, b.broker.Close)
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
