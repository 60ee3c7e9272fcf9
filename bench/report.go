package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Result is what a run measured; Main prints it as one JSON line. Counts
// and rates cover the measuring window: messages stamped inside it and
// their deliveries.
type Result struct {
	Scenario    string  `json:"scenario"`
	URL         string  `json:"url"`
	Connections int     `json:"connections"` // planned
	Connected   int     `json:"connected"`
	NotReady    int     `json:"not_ready"` // connected but never joined
	Rooms       int     `json:"rooms"`
	Publishers  int     `json:"publishers"`
	Rate        float64 `json:"rate"` // as configured: fanout total, rooms per connection
	Payload     int     `json:"payload_bytes"`
	Window      float64 `json:"window_s"`

	Sent           uint64  `json:"sent"`
	SentPerSecond  float64 `json:"sent_per_s"`
	Expected       uint64  `json:"expected"`
	Delivered      uint64  `json:"delivered"`
	DeliveryRatio  float64 `json:"delivery_ratio"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	// ReceivedPerS counts every chat delivery made during the window,
	// whenever its message was sent: the rate the system sustained, late
	// warm-up traffic included.
	ReceivedPerS float64 `json:"received_per_s"`
	Latency      Latency `json:"latency"` // overload: of what arrived live

	// Overload: subscribers closed with 4009, connections that resumed,
	// and the deliveries their replays made (in Delivered, not Latency).
	Evicted       int64    `json:"evicted,omitempty"`
	Resumed       int64    `json:"resumed,omitempty"`
	Replayed      uint64   `json:"replayed,omitempty"`
	ReplayLatency *Latency `json:"replay_latency,omitempty"`

	Joins *JoinsResult `json:"joins,omitempty"` // the joins scenario's figures
	// WireBytes counts the bytes the connections read from their sockets
	// during the window: frames as the server sent them, compressed or
	// not, without TCP/IP headers. WireBytesPerDelivery divides them by
	// the chat deliveries made during the window (see ReceivedPerS), so
	// it includes the window's share of pings and other server messages.
	WireBytes            uint64  `json:"wire_bytes"`
	WireBytesPerDelivery float64 `json:"wire_bytes_per_delivery,omitempty"`
	// Compression: permessage-deflate was offered (--compression); the
	// server accepted it on DeflateConnections of the connections opened
	// at the start; Frames counts the text and binary messages received
	// in the window, CompressedFrames those of them that came compressed.
	Compression        bool   `json:"compression"`
	DeflateConnections int64  `json:"deflate_connections"`
	Frames             uint64 `json:"frames"`
	CompressedFrames   uint64 `json:"compressed_frames"`

	Heartbeats         uint64  `json:"heartbeats"` // server pings answered in the window
	HeartbeatsExpected float64 `json:"heartbeats_expected,omitempty"`

	Server *ProcStats `json:"server,omitempty"` // with --pid
	Bench  ProcStats  `json:"bench"`

	DialFailures   int            `json:"dial_failures"`
	FirstDialError string         `json:"first_dial_error,omitempty"`
	Closed         map[string]int `json:"closed"` // unexpected closes by close code, "eof" or "error"
	FirstClose     string         `json:"first_close,omitempty"`
	ErrorFrames    uint64         `json:"error_frames"`
	FirstError     string         `json:"first_error,omitempty"`
	SendErrors     int            `json:"send_errors"`
	FirstSendError string         `json:"first_send_error,omitempty"`

	DialSeconds  float64 `json:"dial_s"`
	DrainSeconds float64 `json:"drain_s"` // waiting for in-flight deliveries after the window
	Sources      int     `json:"sources"` // loopback source addresses used; 0: kernel's choice
	FileLimit    uint64  `json:"file_limit"`
}

// ProcStats is one process's cost over the window.
type ProcStats struct {
	PID               int     `json:"pid,omitempty"`
	CPUSeconds        float64 `json:"cpu_s"`
	CPUPercent        float64 `json:"cpu_pct"` // of one core
	CPUPerMillion     float64 `json:"cpu_s_per_m_deliveries,omitempty"`
	CPUPerMReceived   float64 `json:"cpu_s_per_m_received,omitempty"` // per delivery made in the window (ReceivedPerS)
	CPUPerHeartbeatUS float64 `json:"cpu_us_per_heartbeat,omitempty"`
	RSSBefore         int64   `json:"rss_before_bytes"`
	RSSAfter          int64   `json:"rss_after_bytes"`
	MemPerConn        float64 `json:"mem_per_conn_bytes"`
}

// fill computes res from the counters and samples.
func (r *run) fill(res *Result, clients []*client, before procSample, w window, selfBefore int64) {
	c := r.cfg
	res.Connections, res.Connected = c.connections(), len(clients)
	res.NotReady = len(clients) - int(r.ready.Load())
	res.Rooms, res.Rate, res.Payload = len(r.rooms), c.Rate, c.Payload
	for _, cl := range clients {
		if cl.publisher {
			res.Publishers++
		}
	}
	secs := w.wall.Seconds()
	res.Window = secs
	lat, replay := r.lat.merged(), r.replayLat.merged()
	res.Sent, res.Expected, res.Delivered = r.sent.Load(), r.expected.Load(), lat.Count()+replay.Count()
	if c.Scenario == Overload {
		res.Evicted, res.Resumed, res.Replayed = r.evicted.Load(), r.resumed.Load(), replay.Count()
		summary := replay.Summary()
		res.ReplayLatency = &summary
	}
	res.SentPerSecond = float64(res.Sent) / secs
	res.DeliveriesPerS = float64(res.Delivered) / secs
	res.ReceivedPerS = float64(w.received[1]-w.received[0]) / secs
	if res.Expected > 0 {
		res.DeliveryRatio = float64(res.Delivered) / float64(res.Expected)
	}
	res.Latency = lat.Summary()
	res.WireBytes = w.reads[1].wire - w.reads[0].wire
	if received := w.received[1] - w.received[0]; received > 0 {
		res.WireBytesPerDelivery = float64(res.WireBytes) / float64(received)
	}
	res.Compression, res.DeflateConnections = c.Compression, r.deflate.Load()
	res.Frames = w.reads[1].frames - w.reads[0].frames
	res.CompressedFrames = w.reads[1].inflated - w.reads[0].inflated
	res.Heartbeats = r.pings.Load()
	if c.PingInterval > 0 {
		res.HeartbeatsExpected = float64(len(clients)) * secs / c.PingInterval.Seconds()
	}
	res.Bench = r.procStats(res, w.self[1]-w.self[0], secs, selfBefore, w.selfRSS)
	if c.PID != 0 {
		s := r.procStats(res, w.server[1].CPU-w.server[0].CPU, secs, before.RSS, w.server[1].RSS)
		s.PID = c.PID
		res.Server = &s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res.DialFailures, res.FirstDialError = r.dialFailures, r.firstDialError
	res.Closed, res.FirstClose = r.closed, r.firstClose
	res.ErrorFrames, res.FirstError = r.errorFrames.Load(), r.firstError
	res.SendErrors, res.FirstSendError = r.sendErrors, r.firstSendError
}

// procStats derives a process's figures from its CPU time in the window
// and its RSS before connecting and at the end of the window.
func (r *run) procStats(res *Result, cpu time.Duration, secs float64, rssBefore, rssAfter int64) ProcStats {
	s := ProcStats{CPUSeconds: cpu.Seconds(), RSSBefore: rssBefore, RSSAfter: rssAfter}
	s.CPUPercent = 100 * s.CPUSeconds / secs
	if res.Delivered > 0 {
		s.CPUPerMillion = s.CPUSeconds / (float64(res.Delivered) / 1e6)
	}
	if res.ReceivedPerS > 0 {
		s.CPUPerMReceived = s.CPUSeconds / (res.ReceivedPerS * secs / 1e6)
	}
	if res.Heartbeats > 0 {
		s.CPUPerHeartbeatUS = s.CPUSeconds / float64(res.Heartbeats) * 1e6
	}
	if res.Connected > 0 {
		s.MemPerConn = float64(rssAfter-rssBefore) / float64(res.Connected)
	}
	return s
}

// writeTable prints res for people.
func writeTable(w io.Writer, res *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	row("scenario", "%s  %s", res.Scenario, res.URL)
	row("connections", "%d of %d (%d not ready, %d dial failures) in %.1fs", res.Connected, res.Connections, res.NotReady, res.DialFailures, res.DialSeconds)
	row("rooms / publishers", "%d / %d, rate %g, payload %d B", res.Rooms, res.Publishers, res.Rate, res.Payload)
	row("window", "%.1fs, then %.1fs draining", res.Window, res.DrainSeconds)
	latency := func(name string, l Latency) {
		row(name, "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f", l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	switch res.Scenario {
	case Idle:
		row("heartbeats", "%d (expected %.0f)", res.Heartbeats, res.HeartbeatsExpected)
	case Joins:
		writeJoins(row, res)
	case Overload:
		row("sent", "%d (%.0f/s)", res.Sent, res.SentPerSecond)
		row("delivered", "%d of %d by the drain's end: ratio %.4f, %.0f/s; live %d, replayed %d",
			res.Delivered, res.Expected, res.DeliveryRatio, res.DeliveriesPerS, res.Latency.Count, res.Replayed)
		row("received", "%.0f/s in the window, whenever sent", res.ReceivedPerS)
		row("evicted", "%d (4009), resumed %d", res.Evicted, res.Resumed)
		latency("lag ms (live)", res.Latency)
		if res.ReplayLatency != nil && res.ReplayLatency.Count > 0 {
			latency("lag ms (replayed)", *res.ReplayLatency)
		}
	default:
		row("sent", "%d (%.0f/s)", res.Sent, res.SentPerSecond)
		row("delivered", "%d of %d: ratio %.4f, %.0f/s", res.Delivered, res.Expected, res.DeliveryRatio, res.DeliveriesPerS)
		latency("latency ms", res.Latency)
	}
	wire := fmt.Sprintf("%.1f MB read in the window", mb(int64(res.WireBytes)))
	if res.WireBytesPerDelivery > 0 {
		wire = fmt.Sprintf("%.1f B read per delivery, ", res.WireBytesPerDelivery) + wire
	}
	row("wire", "%s", wire)
	if res.Compression {
		row("compression", "permessage-deflate on %d of %d connections; %d of %d messages compressed in the window",
			res.DeflateConnections, res.Connected, res.CompressedFrames, res.Frames)
	}
	if res.Server != nil {
		writeProcRow(row, "server", res.Server)
	}
	writeProcRow(row, "bench", &res.Bench)
	row("problems", "closed %s, error frames %d, send errors %d", formatCounts(res.Closed), res.ErrorFrames, res.SendErrors)
	for _, p := range [][2]string{{"first dial error", res.FirstDialError}, {"first close", res.FirstClose}, {"first error frame", res.FirstError}, {"first send error", res.FirstSendError}} {
		if p[1] != "" {
			row(p[0], "%s", p[1])
		}
	}
	tw.Flush()
}

func writeProcRow(row func(string, string, ...any), name string, s *ProcStats) {
	line := fmt.Sprintf("cpu %.2fs (%.1f%%)", s.CPUSeconds, s.CPUPercent)
	if s.CPUPerMillion > 0 {
		line += fmt.Sprintf(", %.2f s/M deliveries", s.CPUPerMillion)
	}
	if s.CPUPerMReceived > 0 && s.CPUPerMReceived != s.CPUPerMillion {
		line += fmt.Sprintf(" (%.2f s/M received)", s.CPUPerMReceived)
	}
	if s.CPUPerHeartbeatUS > 0 {
		line += fmt.Sprintf(", %.1f µs/heartbeat", s.CPUPerHeartbeatUS)
	}
	line += fmt.Sprintf("; rss %.1f → %.1f MB, %.2f KB/conn", mb(s.RSSBefore), mb(s.RSSAfter), s.MemPerConn/1024)
	row(name, "%s", line)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// startProgress prints a status line to w once a second until the
// returned stop is called; stop waits for the printer to finish.
func (r *run) startProgress(w io.Writer) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last progressMark
		for {
			select {
			case <-done:
				return
			case <-t.C:
				last = r.printProgress(w, last)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// progressMark is what the previous progress line saw.
type progressMark struct {
	deliveries, frames uint64
	server             procSample
}

// printProgress prints one status line, rates against last.
func (r *run) printProgress(w io.Writer, last progressMark) progressMark {
	inWindow := r.lat.count() + r.replayLat.count()
	next := progressMark{deliveries: inWindow + sum(&r.outside), frames: sum(&r.frames)}
	line := fmt.Sprintf("bench: %4.0fs %-7s conns %d ready %d | sent %d delivered %d (%d/s) frames %d/s | errors %d closed %d",
		time.Since(r.epoch).Seconds(), *r.phase.Load(), r.connected.Load(), r.ready.Load(),
		r.sent.Load(), inWindow, next.deliveries-last.deliveries, next.frames-last.frames,
		r.errorFrames.Load(), r.closedCount())
	if r.cfg.PID != 0 {
		if s, err := readProc(r.cfg.PID); err == nil {
			next.server = s
			if !last.server.At.IsZero() {
				pct := 100 * (s.CPU - last.server.CPU).Seconds() / s.At.Sub(last.server.At).Seconds()
				line += fmt.Sprintf(" | server cpu %.0f%%", pct)
			}
			line += fmt.Sprintf(" rss %.0f MB", mb(s.RSS))
		}
	}
	fmt.Fprintln(w, line)
	return next
}

func (r *run) closedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.closed {
		n += v
	}
	return n
}
