//go:build !linux

package partyline

// batchWriter makes sends in batches on Linux only (sendbatch_linux.go);
// here a flush goroutine writes each connection with its own calls.
type batchWriter struct{}

func takeBatchWriter() *batchWriter { return nil }

func (b *batchWriter) putBack() {}

func (b *batchWriter) flush(conns []flushable) {
	for _, c := range conns {
		c.flush()
	}
}

func openRings() int { return 0 }

// SendInBatches has no effect here, and reports false: sends are made in
// batches on Linux only.
func SendInBatches(on bool) bool { return false }
