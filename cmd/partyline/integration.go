package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/hook"
	"github.com/partyline/partyline/metrics"
	"github.com/partyline/partyline/webhook"
)

// checkWebhooks validates the webhook and hook settings.
func (c *config) checkWebhooks() error {
	for _, u := range c.WebhookURLs.values {
		if err := checkHTTPURL(u); err != nil {
			return fmt.Errorf("webhook-url: %w", err)
		}
	}
	if _, err := c.webhookTypes(); err != nil {
		return err
	}
	for name, u := range map[string]string{"hook-connect": c.HookConnect, "hook-join": c.HookJoin, "hook-publish": c.HookPublish} {
		if err := checkHTTPURL(u); u != "" && err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	hooked := c.HookConnect != "" || c.HookJoin != "" || c.HookPublish != ""
	switch {
	case (len(c.WebhookURLs.values) > 0 || hooked) && c.WebhookSecret == "":
		return fmt.Errorf("webhook-secret is required with webhook-url and the hook URLs: every request is signed")
	case c.HookTimeout <= 0:
		return fmt.Errorf("hook-timeout must be positive, got %s", c.HookTimeout)
	case c.WebhookLeaveDelay <= 0:
		return fmt.Errorf("webhook-leave-delay must be positive, got %s", c.WebhookLeaveDelay)
	case c.WebhookTimeout <= 0:
		return fmt.Errorf("webhook-timeout must be positive, got %s", c.WebhookTimeout)
	case c.WebhookRetryFor <= 0:
		return fmt.Errorf("webhook-retry-for must be positive, got %s", c.WebhookRetryFor)
	}
	return nil
}

// checkHTTPURL accepts an absolute http or https URL.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	return nil
}

// webhookTypes splits --webhook-events; nil means every type.
func (c *config) webhookTypes() ([]string, error) {
	if strings.TrimSpace(c.WebhookEvents) == "" || c.WebhookEvents == "all" {
		return nil, nil
	}
	var types []string
	for _, t := range strings.Split(c.WebhookEvents, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(partyline.EventTypes, t) {
			return nil, fmt.Errorf("webhook-events: unknown event %q; known: %s", t, strings.Join(partyline.EventTypes, ","))
		}
		types = append(types, t)
	}
	return types, nil
}

// webhookRoutes returns one route per --webhook-url.
func (c *config) webhookRoutes() []partyline.WebhookRoute {
	types, _ := c.webhookTypes() // checked by check
	var routes []partyline.WebhookRoute
	for _, u := range c.WebhookURLs.values {
		routes = append(routes, partyline.WebhookRoute{URL: u, Types: types})
	}
	return routes
}

// hooks returns the client of the hook URLs, or nil when none is set.
func (c *config) hooks(log *slog.Logger) (partyline.Hooks, error) {
	if c.HookConnect == "" && c.HookJoin == "" && c.HookPublish == "" {
		return nil, nil
	}
	var headers []string
	for _, h := range strings.Split(c.HookHeaders, ",") {
		if h = strings.TrimSpace(h); h != "" {
			headers = append(headers, h)
		}
	}
	client, err := hook.New(hook.Options{
		ConnectURL: c.HookConnect, JoinURL: c.HookJoin, PublishURL: c.HookPublish,
		Headers: headers, Timeout: c.HookTimeout, Secret: []byte(c.WebhookSecret),
		Logger: log.With("subsystem", "hook"),
	})
	if err != nil {
		return nil, err
	}
	return client, nil
}

// startWebhooks starts the sender of the store's webhook events, when URLs
// are configured, and returns the Server's webhook options and a function
// that stops the sender. The sender's owner name is stable for a node (its
// host and listen address), so a restarted node takes its leases back at
// once.
func startWebhooks(cfg *config, store partyline.Store, m *metrics.Metrics, log *slog.Logger) (partyline.WebhookOptions, func(), error) {
	routes := cfg.webhookRoutes()
	if len(routes) == 0 {
		return partyline.WebhookOptions{}, func() {}, nil
	}
	eventLog, ok := store.(partyline.EventLog)
	if !ok {
		return partyline.WebhookOptions{}, nil, fmt.Errorf("webhook-url: the store %s cannot record events", cfg.Store)
	}
	// The Sender names itself, at random: nodes named by their host and
	// address could share a name (replicas given one hostname, listening
	// on the same port), and both would send every event.
	sender, err := webhook.New(webhook.Options{
		Log:      eventLog,
		URLs:     cfg.WebhookURLs.values,
		Secret:   []byte(cfg.WebhookSecret),
		Timeout:  cfg.WebhookTimeout,
		RetryFor: cfg.WebhookRetryFor,
		Logger:   log.With("subsystem", "webhook"),
		Observer: m.Webhook(cfg.WebhookURLs.values),
	})
	if err != nil {
		return partyline.WebhookOptions{}, nil, err
	}
	go sender.Run(context.Background())
	opts := partyline.WebhookOptions{Routes: routes, LeaveDelay: cfg.WebhookLeaveDelay, Recorded: sender.Notify}
	return opts, func() { sender.Close() }, nil
}
