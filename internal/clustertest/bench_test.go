package clustertest

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestClusterFanout measures cross-node fan-out on three partyline
// processes: one publisher on node A at a steady rate into one room whose
// subscribers are spread evenly over A, B and C. Each chat carries its send
// time, so the latency is publisher → store → Redis → node → subscriber.
// It runs only with PARTYLINE_CLUSTER_BENCH=1 (docs/scaling.md has the
// command and the figures); PARTYLINE_CLUSTER_BENCH_SUBS, _RATE (msg/s) and
// _DURATION change the load.
func TestClusterFanout(t *testing.T) {
	if os.Getenv("PARTYLINE_CLUSTER_BENCH") != "1" {
		t.Skip("set PARTYLINE_CLUSTER_BENCH=1 to measure cross-node fan-out (see docs/scaling.md)")
	}
	redisURL, postgresURL := services(t)
	subscribers := envInt(t, "PARTYLINE_CLUSTER_BENCH_SUBS", 300)
	rate := envInt(t, "PARTYLINE_CLUSTER_BENCH_RATE", 100)
	duration := envDuration(t, "PARTYLINE_CLUSTER_BENCH_DURATION", 10*time.Second)
	room := "fanout-" + suffix()
	nodes := startNodes(t, []string{"A", "B", "C"},
		"--store", newSchema(t, postgresURL), "--broker", redisURL, "--rate-limit", "-1")

	subs := make([]*benchSubscriber, subscribers)
	for i := range subs {
		n := nodes[i%len(nodes)]
		subs[i] = startBenchSubscriber(t, n.name, n.url()+"/ws/"+room+"?username=sub"+strconv.Itoa(i))
	}
	pub := startBenchSubscriber(t, "A", nodes[0].url()+"/ws/"+room+"?username=publisher")
	cpuBefore := cpuSeconds(t, nodes)

	total := int(float64(rate) * duration.Seconds())
	tick := time.NewTicker(time.Second / time.Duration(rate))
	start := time.Now()
	for i := 0; i < total; i++ {
		<-tick.C
		msg := fmt.Sprintf(`{"type":"chat","room":%q,"content":"%d"}`, room, time.Now().UnixNano())
		pub.ws.SetWriteDeadline(time.Now().Add(waitTime))
		if err := pub.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	tick.Stop()
	sent := time.Since(start)
	deadline := time.Now().Add(waitTime)
	for _, s := range subs {
		for s.count.Load() < int64(total) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	cpu := cpuSeconds(t, nodes) - cpuBefore

	var same, cross []time.Duration
	var delivered int64
	for _, s := range subs {
		s.mu.Lock()
		if s.node == "A" {
			same = append(same, s.latencies...)
		} else {
			cross = append(cross, s.latencies...)
		}
		s.mu.Unlock()
		delivered += s.count.Load()
	}
	want := int64(total) * int64(subscribers)
	all := append(slices.Clone(same), cross...)
	t.Logf("%d subscribers over 3 nodes, 1 publisher on node A at %d msg/s for %s: %d messages sent in %s",
		subscribers, rate, duration, total, sent.Round(time.Millisecond))
	t.Logf("delivered %d of %d (%.4f) at %.0f deliveries/s; nodes' CPU %.2f s, %.1f CPU-s per million deliveries",
		delivered, want, float64(delivered)/float64(want), float64(delivered)/elapsed.Seconds(), cpu, cpu/float64(delivered)*1e6)
	t.Logf("latency all:        %s", percentiles(all))
	t.Logf("latency same node:  %s", percentiles(same))
	t.Logf("latency cross node: %s", percentiles(cross))
	if delivered != want {
		t.Errorf("delivered %d of %d", delivered, want)
	}
}

// benchSubscriber is a light client for the measurement: it keeps only the
// latency of each chat it reads.
type benchSubscriber struct {
	node  string
	ws    *websocket.Conn
	count atomic.Int64

	mu        sync.Mutex // guards latencies
	latencies []time.Duration
}

func startBenchSubscriber(t *testing.T, node, url string) *benchSubscriber {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	s := &benchSubscriber{node: node, ws: ws}
	joined := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			now := time.Now()
			for line := range strings.SplitSeq(string(data), "\n") {
				var f struct{ Type, Content string }
				json.Unmarshal([]byte(line), &f)
				switch f.Type {
				case "online_users":
					once.Do(func() { close(joined) })
				case "chat":
					sentAt, _ := strconv.ParseInt(f.Content, 10, 64)
					s.mu.Lock()
					s.latencies = append(s.latencies, now.Sub(time.Unix(0, sentAt)))
					s.mu.Unlock()
					s.count.Add(1)
				}
			}
		}
	}()
	t.Cleanup(func() { ws.Close(); <-done })
	select {
	case <-joined:
	case <-time.After(waitTime):
		t.Fatalf("%s: not joined within %s", url, waitTime)
	}
	return s
}

// percentiles formats p50, p90, p99 and max of d.
func percentiles(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	slices.Sort(d)
	at := func(p float64) time.Duration {
		return d[min(len(d)-1, int(p*float64(len(d))))].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (%d samples)", at(0.50), at(0.90), at(0.99), d[len(d)-1].Round(10*time.Microsecond), len(d))
}

// cpuSeconds returns the user and system CPU time the nodes have used.
func cpuSeconds(t *testing.T, nodes []*partylineNode) float64 {
	t.Helper()
	var total float64
	for _, n := range nodes {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
		if err != nil {
			return 0 // not Linux: no CPU figure
		}
		// The fields after the parenthesised command name; utime and stime
		// are the 14th and 15th of the line, in clock ticks (100 per second).
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		utime, _ := strconv.ParseFloat(fields[11], 64)
		stime, _ := strconv.ParseFloat(fields[12], 64)
		total += (utime + stime) / 100
	}
	return total
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}
