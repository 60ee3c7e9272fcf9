package groupcommit

// Keys (Options.Key). A key's items are committed by one writer at a time:
// the writer that took the first of them claims the key, and the items of
// that key that other writers take meanwhile wait in its held list, for
// its next batch. A commit that fails may have failed for one of its keys
// alone (a row locked elsewhere, say) while the others are sound, and
// which is not known; so the keys of a failed commit are suspect until a
// commit of theirs succeeds, and a suspect key's requests are orphans,
// committed alone, one key to a batch, by whichever writer takes them. The
// key that fails fails alone, and the others go on.

// writer is what a writer goroutine holds: the keys of the batch it
// commits, and the requests waiting for it to commit them.
type writer[T any] struct {
	keys []string
	held []*request[T]
}

// orphans are the requests of keys whose commit failed. wake tells a
// writer waiting for the queue that there are some.
type orphans[T any] struct {
	list []*request[T]
	wake chan struct{}
}

// admit appends req to batch unless its caller gave up, or another writer
// is committing its key: then req waits for that writer, in its held list,
// not taken, so that its caller may still give up.
func (q *Queue[T]) admit(w *writer[T], batch []*request[T], req *request[T]) []*request[T] {
	if q.key != nil && !q.claim(w, req) {
		return batch
	}
	return req.addTo(batch)
}

// claim makes w the writer of req's key if no other is, and reports
// whether w is; if another is, req waits for it, and if the key is
// suspect, req is an orphan.
func (q *Queue[T]) claim(w *writer[T], req *request[T]) bool {
	k := q.key(req.item)
	q.keyMu.Lock()
	defer q.keyMu.Unlock()
	switch owner := q.owners[k]; {
	case owner == nil && q.suspect[k]:
		q.orphans.list = append(q.orphans.list, req)
		q.signalOrphans()
		return false
	case owner == nil:
		q.owners[k] = w
		w.keys = append(w.keys, k)
	case owner != w:
		owner.held = append(owner.held, req)
		return false
	}
	return true
}

// addTo claims req and appends it to batch, or returns batch as it was
// when req's caller already gave up.
func (req *request[T]) addTo(batch []*request[T]) []*request[T] {
	if req.take() {
		batch = append(batch, req)
	}
	return batch
}

// waiting appends to batch what waits for w: the requests held for it, up
// to maxBatch (those of one suspect key alone), or else the orphans of one
// key, which w claims; alone says that the batch is one suspect key's, to
// be committed without more.
func (q *Queue[T]) waiting(w *writer[T], batch []*request[T]) (_ []*request[T], alone bool) {
	if q.key == nil {
		return batch, false
	}
	q.keyMu.Lock()
	defer q.keyMu.Unlock()
	if len(w.held) > 0 {
		k := q.key(w.held[0].item)
		alone = q.suspect[k]
		kept := w.held[:0]
		for _, req := range w.held {
			if len(batch) == q.maxBatch || (alone && q.key(req.item) != k) {
				kept = append(kept, req)
			} else {
				batch = req.addTo(batch)
			}
		}
		clear(w.held[len(kept):])
		w.held = kept
		return batch, alone
	}
	for len(q.orphans.list) > 0 {
		k := q.key(q.orphans.list[0].item)
		owner := q.owners[k]
		if owner == nil {
			q.owners[k], owner = w, w
			w.keys = append(w.keys, k)
		}
		kept := q.orphans.list[:0]
		for _, req := range q.orphans.list {
			switch {
			case q.key(req.item) != k:
				kept = append(kept, req)
			case owner == w && len(batch) < q.maxBatch:
				batch = req.addTo(batch)
			default:
				owner.held = append(owner.held, req)
			}
		}
		clear(q.orphans.list[len(kept):])
		q.orphans.list = kept
		if owner == w {
			q.signalOrphans()
			return batch, true
		}
	}
	return batch, false
}

// orphaned reports whether orphans wait.
func (q *Queue[T]) orphaned() bool {
	q.keyMu.Lock()
	defer q.keyMu.Unlock()
	return len(q.orphans.list) > 0
}

// release gives up the keys w committed, but those with requests held for
// it, which w commits next, unless the commit failed: then its keys are
// suspect, and the held requests orphans. A commit that succeeded clears
// its keys of suspicion. q.keyMu must not be held.
func (q *Queue[T]) release(w *writer[T], failed bool) {
	if q.key == nil {
		return
	}
	q.keyMu.Lock()
	defer q.keyMu.Unlock()
	for _, k := range w.keys {
		if failed {
			q.suspect[k] = true
		} else {
			delete(q.suspect, k)
		}
	}
	if failed && len(w.held) > 0 {
		q.orphans.list = append(q.orphans.list, w.held...)
		clear(w.held)
		w.held = w.held[:0]
		q.signalOrphans()
	}
	kept := w.keys[:0]
	for _, k := range w.keys {
		if q.heldFor(w, k) {
			kept = append(kept, k)
		} else {
			delete(q.owners, k)
		}
	}
	clear(w.keys[len(kept):])
	w.keys = kept
}

// heldFor reports whether a request of key k waits for w.
func (q *Queue[T]) heldFor(w *writer[T], k string) bool {
	for _, req := range w.held {
		if q.key(req.item) == k {
			return true
		}
	}
	return false
}

// signalOrphans wakes a writer waiting for the queue, if orphans wait.
// q.keyMu must be held.
func (q *Queue[T]) signalOrphans() {
	if len(q.orphans.list) == 0 {
		return
	}
	select {
	case q.orphans.wake <- struct{}{}:
	default:
	}
}
