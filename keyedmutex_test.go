package partyline

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyedMutexOtherKeysAreFree(t *testing.T) {
	var k keyedMutex
	unlock := k.lock("a")
	defer unlock()
	done := make(chan struct{})
	go func() {
		k.lock("b")()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("locking b waited for the holder of a")
	}
}

// TestKeyedMutexExcludesAndForgets: holders of one key never overlap, and
// once every lock is released the table is empty.
func TestKeyedMutexExcludesAndForgets(t *testing.T) {
	var k keyedMutex
	var holders [4]atomic.Int32
	var wg sync.WaitGroup
	for i := range 400 {
		key := i % len(holders)
		wg.Go(func() {
			unlock := k.lock(string(rune('a' + key)))
			defer unlock()
			if n := holders[key].Add(1); n != 1 {
				t.Errorf("key %c held by %d at once", 'a'+key, n)
			}
			holders[key].Add(-1)
		})
	}
	wg.Wait()
	if len(k.keys) != 0 {
		t.Fatalf("after every lock was released, %d keys remain", len(k.keys))
	}
}
