package main

import (
	"io"
	"testing"
	"time"
)

func TestMemoryTrimSetting(t *testing.T) {
	for _, tc := range []struct {
		setting string
		env     map[string]string
		want    bool
	}{
		{"auto", nil, true},
		{"auto", map[string]string{"GOGC": "50"}, false},
		{"auto", map[string]string{"GOMEMLIMIT": "1GiB"}, false},
		{"on", map[string]string{"GOGC": "off"}, true},
		{"off", nil, false},
	} {
		if got := memoryTrimOn(tc.setting, env(tc.env)); got != tc.want {
			t.Errorf("memory-trim %s with %v: on = %v, want %v", tc.setting, tc.env, got, tc.want)
		}
	}
	c, err := loadConfig(nil, env(map[string]string{"PARTYLINE_MEMORY_TRIM": "off"}), io.Discard)
	if err != nil || c.MemoryTrim != "off" {
		t.Fatalf("PARTYLINE_MEMORY_TRIM=off: %+v, %v", c, err)
	}
	if _, err := loadConfig([]string{"--memory-trim", "yes"}, env(nil), io.Discard); err == nil {
		t.Fatal("--memory-trim yes accepted, want auto, on or off")
	}
}

// A trim comes after trimQuietSamples quiet samples in a row, when much is
// reclaimable, and at most once per trimGap; a busy sample starts the count
// again.
func TestTrimPolicy(t *testing.T) {
	const live = 16 << 20
	start := time.Unix(0, 0)
	var p trimPolicy
	allocs := uint64(0)
	sample := func(i int, allocated, free uint64) bool {
		allocs += allocated
		return p.observe(start.Add(time.Duration(i)*time.Second), heapSample{allocs: allocs, live: live, objects: live, free: free})
	}
	step := 0
	expect := func(what string, allocated, free uint64, want bool) {
		t.Helper()
		step++
		if got := sample(step, allocated, free); got != want {
			t.Fatalf("sample %d (%s): trim = %v, want %v", step, what, got, want)
		}
	}
	expect("first sample: nothing to compare with", 0, 12<<20, false)
	expect("quiet 1", 1000, 12<<20, false)
	expect("quiet 2", 1000, 12<<20, false)
	expect("busy: allocating 1 MiB a second", 1<<20, 12<<20, false)
	expect("quiet 1", 0, 12<<20, false)
	expect("quiet 2", 0, 12<<20, false)
	expect("quiet 3", 0, 12<<20, true)
	for range trimQuietSamples + 5 {
		expect("quiet, but within trimGap of the last trim", 0, 12<<20, false)
	}
	step += int(trimGap / time.Second)
	expect("quiet after trimGap, little free", 0, 3<<20, false)
	expect("quiet after trimGap, a quarter of the live heap free", 0, 5<<20, true)
}
