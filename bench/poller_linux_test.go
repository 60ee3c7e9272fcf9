package bench

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// sampleWriter keeps the goroutine count at each progress line.
type sampleWriter struct {
	testWriter
	counts chan int
}

func (w sampleWriter) Write(p []byte) (int, error) {
	select {
	case w.counts <- runtime.NumGoroutine():
	default:
	}
	return w.testWriter.Write(p)
}

func TestPollersReadWithoutGoroutinePerConnection(t *testing.T) {
	const conns = 60
	url := startFake(t, &fakeServer{})
	base := runtime.NumGoroutine()
	cfg := shortConfig(url, Idle)
	cfg.Connections, cfg.Rooms, cfg.Duration = conns, 3, 2500*time.Millisecond
	w := sampleWriter{testWriter{t}, make(chan int, 10)}
	res, err := Run(context.Background(), cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != conns || res.NotReady != 0 {
		t.Fatalf("connected %d, not ready %d", res.Connected, res.NotReady)
	}
	close(w.counts)
	most := 0
	for n := range w.counts {
		most = max(most, n-base)
	}
	// The fake holds one goroutine per connection; the bench a few.
	if most == 0 || most > conns+conns/2 {
		t.Errorf("up to %d goroutines beyond the %d before, for %d connections: want about %d",
			most, base, conns, conns+runtime.GOMAXPROCS(0)+2)
	}
}
