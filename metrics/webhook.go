package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/partyline/partyline/webhook"
)

var _ webhook.Observer = (*Webhook)(nil)

// Webhook counts a webhook.Sender's deliveries per URL (docs/protocol.md
// §11.1). It implements webhook.Observer; its methods are safe for
// concurrent use.
//
// The url label is the configured URL without its password, query and
// fragment, which may hold credentials: /metrics is not authenticated. Two
// URLs that differ only there get "#2", "#3", … appended, in the order
// given. A URL that was not configured counts as "other".
type Webhook struct {
	urls  map[string]webhookChildren // by configured URL, "other" included
	other webhookChildren
}

// webhookChildren are the series of one URL.
type webhookChildren struct {
	sent, retried, gaveUp prometheus.Counter
	pending               prometheus.Gauge
}

// Webhook creates the webhook metrics of urls, the URLs given to the
// Sender, registers them where New registered the others, and returns
// them. Every series exists, at zero, from the first scrape. Call it at
// most once: a second call panics, as prometheus.MustRegister does.
func (m *Metrics) Webhook(urls []string) *Webhook {
	sent := newWebhookCounter("events_sent_total", "Webhook events delivered: their request was answered with a 2xx.")
	retried := newWebhookCounter("events_retried_total", "Failed webhook delivery attempts (a non-2xx answer, a network error or a timeout), each retried; one attempt carries up to 100 events.")
	gaveUp := newWebhookCounter("events_given_up_total", "Webhook events dropped undelivered after --webhook-retry-for.")
	pending := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "webhook_events_pending",
		Help:      "Webhook events waiting in the store; every node of a cluster reports the same count.",
	}, []string{"url"})
	m.register(sent, retried, gaveUp, pending)

	children := func(label string) webhookChildren {
		return webhookChildren{
			sent:    sent.WithLabelValues(label),
			retried: retried.WithLabelValues(label),
			gaveUp:  gaveUp.WithLabelValues(label),
			pending: pending.WithLabelValues(label),
		}
	}
	w := &Webhook{urls: make(map[string]webhookChildren, len(urls)), other: children(other)}
	used := make(map[string]int)
	for _, u := range urls {
		if _, ok := w.urls[u]; ok {
			continue
		}
		label := webhook.Redact(u)
		if used[label]++; used[label] > 1 {
			label += "#" + strconv.Itoa(used[label])
		}
		w.urls[u] = children(label)
	}
	return w
}

func newWebhookCounter(name, help string) *prometheus.CounterVec {
	return newCounterVec("webhook_"+name, help, "url")
}

func (w *Webhook) children(url string) webhookChildren {
	if c, ok := w.urls[url]; ok {
		return c
	}
	return w.other
}

// Sent counts n events delivered to url.
func (w *Webhook) Sent(url string, n int) { w.children(url).sent.Add(float64(n)) }

// Retried counts one failed attempt to deliver to url.
func (w *Webhook) Retried(url string) { w.children(url).retried.Inc() }

// GaveUp counts n events of url given up.
func (w *Webhook) GaveUp(url string, n int) { w.children(url).gaveUp.Add(float64(n)) }

// Pending sets how many events wait for url.
func (w *Webhook) Pending(url string, n int) { w.children(url).pending.Set(float64(n)) }
