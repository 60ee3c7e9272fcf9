package redis_test

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/partyline/partyline"
	"github.com/partyline/partyline/internal/brokertest"
	"github.com/partyline/partyline/internal/presencetest"
	"github.com/partyline/partyline/redis"
)

// testTTL is the presence TTL of the conformance suite's nodes.
const testTTL = 2 * time.Second

func TestBrokerConformance(t *testing.T) {
	u := testURL(t)
	brokertest.Run(t, brokertest.Backend{
		NewTransport: func(t *testing.T) brokertest.NewNode {
			prefix := newPrefix(t, u)
			return func(t *testing.T) partyline.Broker {
				return open(t, u, redis.Options{Prefix: prefix}).Broker()
			}
		},
		Cluster: true,
	})
}

func TestPresenceConformance(t *testing.T) {
	u := testURL(t)
	presencetest.Run(t, presencetest.Backend{
		NewStorage: func(t *testing.T) presencetest.NewNode {
			prefix := newPrefix(t, u)
			return func(t *testing.T) partyline.Presence {
				return open(t, u, redis.Options{Prefix: prefix, PresenceTTL: testTTL}).Presence()
			}
		},
		Cluster: true,
		TTL:     testTTL,
	})
}

// testURL returns the Redis server to test against, from
// PARTYLINE_TEST_REDIS, or skips t.
func testURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("PARTYLINE_TEST_REDIS")
	if u == "" {
		t.Skip("PARTYLINE_TEST_REDIS is not set; set it to a Redis URL such as redis://127.0.0.1:6379/0 to run the Redis tests")
	}
	return u
}

// open opens a Client on u and closes it when t ends.
func open(t *testing.T, u string, opts redis.Options) *redis.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := redis.Open(ctx, u, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", u, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newPrefix returns a key prefix private to t, whose keys are deleted when
// t ends.
func newPrefix(t *testing.T, u string) string {
	t.Helper()
	prefix := "partyline-test:" + randomHex() + ":"
	t.Cleanup(func() { deleteKeys(t, u, prefix) })
	return prefix
}

// deleteKeys deletes the keys starting with prefix, as if Redis lost them.
func deleteKeys(t *testing.T, u, prefix string) {
	t.Helper()
	opts, err := goredis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// One DEL takes them all at once, as a restart would. Deleted one by
	// one, a heartbeat in between could find its node gone and restore it
	// while its entries were still there, which the restore leaves alone;
	// their deletion then went unnoticed by the node, registered again.
	var keys []string
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scanning %s*: %v", prefix, err)
	}
	if len(keys) == 0 {
		return
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatalf("deleting %q: %v", keys, err)
	}
}

// hostOf returns the host:port of Redis URL u.
func hostOf(t *testing.T, u string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Host
}

// withHost returns Redis URL u pointing at host instead.
func withHost(t *testing.T, u, host string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	parsed.Host = host
	return parsed.String()
}

// waitFor polls cond until it holds or d passes, and reports whether it held.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
