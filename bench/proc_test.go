package bench

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestReadProcSelf(t *testing.T) {
	// Burn a little CPU so utime+stime is at least one tick.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU <= 0 || s.CPU > selfCPU()+clockTick {
		t.Errorf("CPU from /proc = %v, getrusage %v: want positive and consistent", s.CPU, selfCPU())
	}
	if s.RSS < 1<<20 || s.RSS > 1<<34 {
		t.Errorf("RSS = %d bytes, want a plausible test process size", s.RSS)
	}
	if _, err := readProc(1 << 30); err == nil {
		t.Error("readProc of a missing process: want an error")
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 150, stime 25 ticks.
	stat := "1234 (a b) c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 3 0 100 1000 10\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 1750*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 1.75s", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 25 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q): want an error", bad)
		}
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\tpartyline\nVmPeak:\t  9999 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n"
	if got, err := parseStatusRSS([]byte(status)); err != nil || got != 12345*1024 {
		t.Errorf("parseStatusRSS = %d, %v; want %d", got, err, 12345*1024)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
		if _, err := parseStatusRSS([]byte(bad)); err == nil {
			t.Errorf("parseStatusRSS(%q): want an error", bad)
		}
	}
}

func TestRaiseFileLimit(t *testing.T) {
	got, err := raiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got != lim.Max || lim.Cur != lim.Max {
		t.Errorf("raiseFileLimit = %d; soft %d hard %d: want soft = hard", got, lim.Cur, lim.Max)
	}
}
