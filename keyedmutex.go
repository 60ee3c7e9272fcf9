package partyline

import "sync"

// keyedMutex is a mutex per key: lock waits only for holders of the same
// key. The hub serializes each user's connects and disconnects, and each
// topic's broker calls, with one, so that a slow backend call holds up only
// the user or topic it is for. A key's entry exists while the key is held
// or awaited, so the table is no larger than the keys in use. The zero
// value is ready to use.
type keyedMutex struct {
	mu   sync.Mutex // guards keys and every entry's refs
	keys map[string]*keyEntry
}

// keyEntry is one key's mutex.
type keyEntry struct {
	mu   sync.Mutex
	refs int // the holder and the waiters
}

// lock locks key and returns the function that unlocks it.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	e := k.keys[key]
	if e == nil {
		if k.keys == nil {
			k.keys = make(map[string]*keyEntry)
		}
		e = &keyEntry{}
		k.keys[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.keys, key)
		}
		k.mu.Unlock()
	}
}
