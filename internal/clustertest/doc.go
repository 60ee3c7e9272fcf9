// Package clustertest proves end to end that partyline nodes sharing Redis
// and PostgreSQL behave as one server (docs/protocol.md §8, docs/scaling.md):
// in-process nodes behind real loopback listeners (cluster_test.go), real
// binaries killed with SIGKILL or cut off from a Redis that restarts
// (process_test.go), and a cross-node fan-out measurement (bench_test.go).
//
// The tests need a Redis and a PostgreSQL server and skip without them:
//
//	PARTYLINE_TEST_REDIS=redis://127.0.0.1:6379/0 \
//	PARTYLINE_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	go test -race ./internal/clustertest/
//
// Each test is isolated: its own Redis key prefix (or its own redis-server)
// and its own PostgreSQL schema, dropped when it ends. The package has no
// code outside its tests.
package clustertest
