package metrics

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/partyline/partyline"
)

// other is the label value of everything outside a known set.
const other = "other"

// messageTypes are the client message types of docs/protocol.md §4.
var messageTypes = []string{
	"chat", "join", "leave", "direct", "typing", "presence", "history", "refresh", "ping",
}

// errorCodes are the protocol's error and refusal codes.
var errorCodes = []string{
	partyline.CodeBadRequest, partyline.CodeUnknownType, partyline.CodeInvalidRoom,
	partyline.CodeNotJoined, partyline.CodeForbidden, partyline.CodeTooLarge,
	partyline.CodeTooManyRooms, partyline.CodeRateLimited, partyline.CodeUserOffline,
	partyline.CodeUnavailable, partyline.CodeMissingUsername, partyline.CodeInvalidUsername,
	partyline.CodeUnauthorized, partyline.CodeForbiddenOrigin, partyline.CodeForbiddenRoom,
	partyline.CodeTooManyConnections, partyline.CodeShuttingDown, partyline.CodeNotFound,
}

// storeOps, brokerOps and presenceOps are the operations resolved up
// front, so their series exist (at zero) from the first scrape. The server
// may time others.
var (
	storeOps    = []string{"append", "history", "last_seq", "ping"}
	brokerOps   = []string{"publish", "subscribe", "unsubscribe", "ping"}
	presenceOps = []string{"add", "remove", "users", "contains"}
)

// maxOps bounds the distinct op labels of one backend, "other" included.
const maxOps = 32

// resolve returns the children of vec for values and for "other".
func resolve(vec *prometheus.CounterVec, values []string) map[string]prometheus.Counter {
	children := map[string]prometheus.Counter{other: vec.WithLabelValues(other)}
	for _, v := range values {
		children[v] = vec.WithLabelValues(v)
	}
	return children
}

// count increments the child of value, or of "other" when value is unknown.
func count(children map[string]prometheus.Counter, value string) {
	c, ok := children[value]
	if !ok {
		c = children[other]
	}
	c.Inc()
}

// opMetrics times a backend's calls by operation. Operation names come from
// the server's code, not from clients, so the set is learned as calls
// arrive; it is still capped at maxOps, after which names count as "other".
type opMetrics struct {
	latency *prometheus.HistogramVec
	errors  *prometheus.CounterVec

	// ops is a copy-on-write map from op to its children: the hot path
	// reads it without locking or allocating.
	ops atomic.Pointer[map[string]opChildren]
	mu  sync.Mutex // serializes writers of ops
}

// opChildren are the series of one operation.
type opChildren struct {
	latency prometheus.Observer
	errors  prometheus.Counter
}

// newOpMetrics returns partyline_<backend>_latency_seconds and
// partyline_<backend>_errors_total with ops and "other" resolved.
func newOpMetrics(backend string, ops []string) *opMetrics {
	m := &opMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      backend + "_latency_seconds",
			Help:      "Duration of " + backend + " calls by operation.",
			Buckets:   latencyBuckets,
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      backend + "_errors_total",
			Help:      "Failed " + backend + " calls by operation.",
		}, []string{"op"}),
	}
	children := map[string]opChildren{other: m.resolve(other)}
	for _, op := range ops {
		children[op] = m.resolve(op)
	}
	m.ops.Store(&children)
	return m
}

func (m *opMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.latency, m.errors}
}

func (m *opMetrics) resolve(op string) opChildren {
	return opChildren{latency: m.latency.WithLabelValues(op), errors: m.errors.WithLabelValues(op)}
}

// observe records one call of op.
func (m *opMetrics) observe(op string, d time.Duration, err error) {
	c, ok := (*m.ops.Load())[op]
	if !ok {
		c = m.add(op)
	}
	c.latency.Observe(d.Seconds())
	if err != nil {
		c.errors.Inc()
	}
}

// add resolves a new op, or returns "other" when op is not a plain name or
// the cap is reached.
func (m *opMetrics) add(op string) opChildren {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.ops.Load()
	if c, ok := old[op]; ok {
		return c
	}
	if len(old) >= maxOps || !validOp(op) {
		return old[other]
	}
	ops := maps.Clone(old)
	ops[op] = m.resolve(op)
	m.ops.Store(&ops)
	return ops[op]
}

// validOp reports whether op is a short lower-case name such as "last_seq".
func validOp(op string) bool {
	if op == "" || len(op) > 32 {
		return false
	}
	for i := 0; i < len(op); i++ {
		if c := op[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
