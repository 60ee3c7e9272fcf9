// Package metrics exports a partyline server's traffic to Prometheus
// (docs/protocol.md §6, GET /metrics).
//
// A *Metrics is the server's partyline.Metrics: the server calls it on the
// hot path, where it only bumps pre-resolved counters and histograms and
// never allocates. Gauges (connections, rooms, users) are read from the
// server's Stats at scrape time.
//
// Label values come from bounded sets so a client cannot grow the series
// count: message types and error codes outside the protocol's lists are
// counted as "other", and so are backend operations beyond the first few
// dozen distinct names.
//
// The server and its Metrics refer to each other; build the Metrics first
// with a stats function that reads the server once it exists:
//
//	var srv *partyline.Server
//	m := metrics.New(reg, func() partyline.Stats { return srv.Stats() })
//	srv, err := partyline.New(partyline.Options{Metrics: m})
//	mux.Handle("GET /metrics", m.Handler())
//
// A scrape before srv is set must not happen (serve after New returns).
//
// With webhooks, m.Webhook(urls) adds their metrics and is the
// webhook.Sender's Observer.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/partyline/partyline"
)

var _ partyline.Metrics = (*Metrics)(nil)

const namespace = "partyline"

// latencyBuckets span 100µs to 5s: a fan-out or an embedded store call takes
// well under a millisecond, a networked one a few milliseconds, and anything
// past seconds is an outage.
var latencyBuckets = []float64{
	.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5,
}

// Metrics counts a server's traffic in Prometheus metrics. It implements
// partyline.Metrics; its methods are safe for concurrent use and do not
// allocate.
type Metrics struct {
	gatherer prometheus.Gatherer
	register func(...prometheus.Collector) // adds collectors to what gatherer serves

	messagesIn  map[string]prometheus.Counter // by message type, "other" included
	refusals    map[string]prometheus.Counter // by error code, "other" included
	messagesOut prometheus.Counter
	deliveries  prometheus.Counter
	evictions   prometheus.Counter
	fanout      prometheus.Observer
	store       *opMetrics
	broker      *opMetrics
	presence    *opMetrics
}

// New creates the metrics, registers them with reg and returns them.
//
// A nil reg means a new registry that also holds the Go runtime and process
// collectors. stats is called at each scrape for the connections, rooms and
// users gauges; nil leaves those gauges out.
//
// New panics if reg already holds metrics of the same names, as
// prometheus.MustRegister does.
func New(reg prometheus.Registerer, stats func() partyline.Stats) *Metrics {
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg = r
	}
	m, cs := newMetrics()
	if stats != nil {
		cs = append(cs, gauges(stats)...)
	}
	reg.MustRegister(cs...)
	m.gatherer, m.register = gathererFor(reg, cs)
	return m
}

// newMetrics builds the traffic metrics, with their children for the known
// label values already resolved, and returns the collectors to register.
func newMetrics() (*Metrics, []prometheus.Collector) {
	in := newCounterVec("messages_in_total", "Inbound client messages by type.", "type")
	refusals := newCounterVec("refusals_total", "HTTP refusals and error frames by code.", "code")
	fanout := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "fanout_latency_seconds",
		Help:      "Time from a message's store commit to its fan-out to local connections.",
		Buckets:   latencyBuckets,
	})
	m := &Metrics{
		messagesIn:  resolve(in, messageTypes),
		refusals:    resolve(refusals, errorCodes),
		messagesOut: newCounter("messages_out_total", "Frames fanned out to local connections."),
		deliveries:  newCounter("deliveries_total", "Frames queued to connections: one per recipient."),
		evictions:   newCounter("evictions_total", "Slow consumers closed with 4009."),
		fanout:      fanout,
		store:       newOpMetrics("store", storeOps),
		broker:      newOpMetrics("broker", brokerOps),
		presence:    newOpMetrics("presence", presenceOps),
	}
	cs := []prometheus.Collector{in, refusals, m.messagesOut, m.deliveries, m.evictions, fanout}
	cs = append(cs, m.store.collectors()...)
	cs = append(cs, m.broker.collectors()...)
	cs = append(cs, m.presence.collectors()...)
	return m, cs
}

// gauges returns the scrape-time gauges read from stats.
func gauges(stats func() partyline.Stats) []prometheus.Collector {
	gauge := func(name, help string, value func(partyline.Stats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(
			prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help},
			func() float64 { return float64(value(stats())) },
		)
	}
	return []prometheus.Collector{
		gauge("connections", "Open WebSocket connections on this node.", func(s partyline.Stats) int { return s.Connections }),
		gauge("rooms", "Rooms with at least one subscriber on this node.", func(s partyline.Stats) int { return s.Rooms }),
		gauge("users", "Distinct users connected to this node.", func(s partyline.Stats) int { return s.Users }),
	}
}

// gathererFor returns reg when it can be scraped, as *prometheus.Registry
// can; otherwise a registry of cs alone. register adds later collectors to
// reg and to the registry returned.
func gathererFor(reg prometheus.Registerer, cs []prometheus.Collector) (g prometheus.Gatherer, register func(...prometheus.Collector)) {
	if g, ok := reg.(prometheus.Gatherer); ok {
		return g, reg.MustRegister
	}
	own := prometheus.NewRegistry()
	own.MustRegister(cs...)
	return own, func(cs ...prometheus.Collector) {
		reg.MustRegister(cs...)
		own.MustRegister(cs...)
	}
}

// Handler serves the registry given to New in the Prometheus text format:
// the partyline metrics and whatever else that registry holds. When that
// registry cannot be gathered (a wrapping Registerer), it serves the
// partyline metrics alone.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// MessageIn counts one inbound client message of type kind; a type outside
// the protocol counts as "other".
func (m *Metrics) MessageIn(kind string) { count(m.messagesIn, kind) }

// MessageOut counts one frame fanned out to n connections and observes the
// latency from its store commit.
func (m *Metrics) MessageOut(n int, latency time.Duration) {
	m.messagesOut.Inc()
	if n > 0 {
		m.deliveries.Add(float64(n))
	}
	m.fanout.Observe(latency.Seconds())
}

// Evicted counts one slow consumer closed with 4009.
func (m *Metrics) Evicted() { m.evictions.Inc() }

// Refused counts an HTTP refusal or error frame by code; a code outside the
// protocol counts as "other".
func (m *Metrics) Refused(code string) { count(m.refusals, code) }

// StoreLatency observes one store call of operation op, and counts it as an
// error when err is not nil.
func (m *Metrics) StoreLatency(op string, d time.Duration, err error) { m.store.observe(op, d, err) }

// BrokerLatency observes one broker call of operation op, and counts it as
// an error when err is not nil.
func (m *Metrics) BrokerLatency(op string, d time.Duration, err error) { m.broker.observe(op, d, err) }

// PresenceLatency observes one presence call of operation op, and counts it
// as an error when err is not nil.
func (m *Metrics) PresenceLatency(op string, d time.Duration, err error) {
	m.presence.observe(op, d, err)
}

func newCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
}

func newCounterVec(name, help, label string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, []string{label})
}
