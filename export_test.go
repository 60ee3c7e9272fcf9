package partyline

import "os"

// OpenRings, for the tests of package partyline_test, is how many io_uring
// rings the flush goroutines hold.
var OpenRings = openRings

// PARTYLINE_TEST_IO_URING=off runs the tests with every send made alone.
func init() {
	if os.Getenv("PARTYLINE_TEST_IO_URING") == "off" {
		SendInBatches(false)
	}
}
