package bench

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// openFiles counts this process's open descriptors, or returns -1 where
// /proc/self/fd does not exist.
func openFiles() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds)
}

// waitFor polls cond for up to five seconds.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestRunLeavesNothingBehind(t *testing.T) {
	url := startFake(t, &fakeServer{pingEvery: 50 * time.Millisecond})
	goroutines, files := runtime.NumGoroutine(), openFiles()
	cfg := shortConfig(url, Fanout)
	cfg.Subscribers, cfg.Publishers, cfg.Rate = 30, 2, 40
	checkDelivery(t, runOK(t, cfg), 30)
	// The fake's handlers end once they see the bench's close.
	if !waitFor(func() bool { return runtime.NumGoroutine() <= goroutines && openFiles() <= files }) {
		t.Errorf("after Run: %d goroutines and %d descriptors, want at most %d and %d as before",
			runtime.NumGoroutine(), openFiles(), goroutines, files)
	}
}

func TestBigMessagesAcrossReads(t *testing.T) {
	// A greeting three times a poller's buffer arrives in several reads.
	cfg := shortConfig(startFake(t, &fakeServer{bigHello: 3 * pollerBufferSize}), Rooms)
	cfg.Rate = 4
	checkDelivery(t, runOK(t, cfg), 2)
}

func TestRunWithReaderGoroutines(t *testing.T) {
	url := startFake(t, &fakeServer{bigHello: 3 * readBufferSize, pingEvery: 100 * time.Millisecond})
	goroutines := runtime.NumGoroutine()
	cfg := shortConfig(url, Fanout)
	cfg.Publishers, cfg.Rate, cfg.noPollers = 2, 40, true
	res := runOK(t, cfg)
	checkDelivery(t, res, 5)
	if res.Heartbeats == 0 {
		t.Error("no heartbeats answered")
	}
	if !waitFor(func() bool { return runtime.NumGoroutine() <= goroutines }) {
		t.Errorf("after Run: %d goroutines, want at most %d as before", runtime.NumGoroutine(), goroutines)
	}
}
