package partyline

import "time"

// Metrics observes the server's traffic, for an exporter such as the
// prometheus package. Every method is called on the hot path and must be
// cheap and safe for concurrent use. Gauges (connections, rooms, users) are
// read from Server.Stats instead.
type Metrics interface {
	// MessageIn counts one inbound client message of the given type.
	MessageIn(kind string)
	// MessageOut counts one frame fanned out to n connections, and how long
	// the fan-out took from the store's commit.
	MessageOut(n int, latency time.Duration)
	// Evicted counts a slow consumer closed with 4009.
	Evicted()
	// Refused counts an HTTP refusal or an error frame by code.
	Refused(code string)
	// StoreLatency, BrokerLatency and PresenceLatency time one backend
	// call by operation, err being what the backend returned.
	StoreLatency(op string, d time.Duration, err error)
	BrokerLatency(op string, d time.Duration, err error)
	PresenceLatency(op string, d time.Duration, err error)
}

type noMetrics struct{}

func (noMetrics) MessageIn(string)                             {}
func (noMetrics) MessageOut(int, time.Duration)                {}
func (noMetrics) Evicted()                                     {}
func (noMetrics) Refused(string)                               {}
func (noMetrics) StoreLatency(string, time.Duration, error)    {}
func (noMetrics) BrokerLatency(string, time.Duration, error)   {}
func (noMetrics) PresenceLatency(string, time.Duration, error) {}
