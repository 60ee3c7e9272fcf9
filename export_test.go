package partyline

// For the tests of package partyline_test.
var (
	// OpenRings is how many io_uring rings the flush goroutines hold.
	OpenRings = openRings
	// SendInBatches turns sends in batches through io_uring on or off,
	// and reports whether they were on.
	SendInBatches = sendInBatches
)
