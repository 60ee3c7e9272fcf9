package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestWebhookMetrics(t *testing.T) {
	const (
		plain  = "https://hooks.example.com/partyline"
		secret = "https://bot:hunter2@hooks.example.com/partyline?token=hunter2"
		other2 = "https://hooks.example.com/partyline?token=other"
	)
	m := New(prometheus.NewRegistry(), nil)
	w := m.Webhook([]string{plain, secret, other2})
	w.Sent(plain, 100)
	w.Sent(plain, 3)
	w.Retried(plain)
	w.Retried(plain)
	w.GaveUp(plain, 7)
	w.Pending(plain, 12)
	w.Pending(plain, 5)
	w.Sent(secret, 1)
	w.Sent("https://not.configured/", 4)

	got := scrape(t, m.Handler())
	expect(t, got, map[string]float64{
		`partyline_webhook_events_sent_total{url="https://hooks.example.com/partyline"}`:               103,
		`partyline_webhook_events_retried_total{url="https://hooks.example.com/partyline"}`:            2,
		`partyline_webhook_events_given_up_total{url="https://hooks.example.com/partyline"}`:           7,
		`partyline_webhook_events_pending{url="https://hooks.example.com/partyline"}`:                  5,
		`partyline_webhook_events_sent_total{url="https://bot:xxxxx@hooks.example.com/partyline"}`:     1,
		`partyline_webhook_events_pending{url="https://bot:xxxxx@hooks.example.com/partyline"}`:        0,
		`partyline_webhook_events_sent_total{url="https://hooks.example.com/partyline#2"}`:             0,
		`partyline_webhook_events_retried_total{url="https://hooks.example.com/partyline#2"}`:          0,
		`partyline_webhook_events_given_up_total{url="https://hooks.example.com/partyline#2"}`:         0,
		`partyline_webhook_events_sent_total{url="other"}`:                                             4,
		`partyline_webhook_events_given_up_total{url="https://bot:xxxxx@hooks.example.com/partyline"}`: 0,
	})
	for series := range got {
		if strings.Contains(series, "hunter2") || strings.Contains(series, "token") {
			t.Errorf("a URL's credentials are exported: %s", series)
		}
	}
}

// A Registerer that cannot be gathered still gets the webhook metrics
// served by Handler.
func TestWebhookMetricsWrappedRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(prometheus.WrapRegistererWith(prometheus.Labels{"node": "a"}, reg), nil)
	m.Webhook([]string{"http://127.0.0.1:9000/hook"}).Sent("http://127.0.0.1:9000/hook", 2)
	expect(t, scrape(t, m.Handler()), map[string]float64{
		`partyline_webhook_events_sent_total{url="http://127.0.0.1:9000/hook"}`: 2,
	})
	expect(t, scrape(t, promhttpFor(reg)), map[string]float64{
		`partyline_webhook_events_sent_total{node="a",url="http://127.0.0.1:9000/hook"}`: 2,
	})
}
