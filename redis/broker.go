package redis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/partyline/partyline"
)

// Health checking of the PubSub connection: the broker pings Redis every
// pingInterval, so a healthy connection never stays silent longer than
// that; one silent for pingInterval plus twice the command timeout is taken
// for dead, and go-redis replaces it.
const pingInterval = 2 * time.Second

// Reconnect backoff of the receive loop while Redis is unreachable.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// Broker is a partyline.Broker over Redis Pub/Sub: topic T is the channel
// Options.Prefix+T, and a node subscribes only to its hub's topics.
//
// One goroutine reads the broker's PubSub connection and calls the handler;
// another pings it. When the connection breaks, go-redis dials again and
// resubscribes every channel in one SUBSCRIBE. To see that happen the broker
// also subscribes a private channel that nobody publishes to (the maintainers'
// advice in go-redis#1070: watch the subscription confirmations): every
// confirmation of it after the first — or after a receive error — means a
// new connection whose SUBSCRIBE Redis has fully executed, so the broker then
// calls HandleReconnect and the hub resynchronises from the Store.
type Broker struct {
	rdb      *goredis.Client
	prefix   string
	sentinel string // the private channel
	timeout  time.Duration

	// mu guards the following. handler and pubsub are set once, by Start,
	// before the goroutines that read them without mu.
	mu      sync.Mutex
	handler partyline.BrokerHandler
	pubsub  *goredis.PubSub
	topics  map[string]struct{}        // delivered topics; filters late events
	waiters map[string][]chan struct{} // by channel: Subscribes awaiting Redis's confirmation
	cancel  context.CancelFunc         // stops the goroutines; nil before Start
	closed  bool

	wg sync.WaitGroup // the receive and ping goroutines

	// Owned by the receive goroutine.
	confirmations int  // of the sentinel channel
	lost          bool // a receive failed since the last confirmation
}

var (
	_ partyline.Broker         = (*Broker)(nil)
	_ partyline.Pinger         = (*Broker)(nil)
	_ partyline.PublishCounter = (*Broker)(nil)
)

// newBroker returns an unstarted broker on rdb.
func newBroker(rdb *goredis.Client, opts Options) *Broker {
	return &Broker{
		rdb:      rdb,
		prefix:   opts.Prefix,
		sentinel: opts.Prefix + "\x00broker:" + randomID(),
		timeout:  opts.Timeout,
		topics:   make(map[string]struct{}),
		waiters:  make(map[string][]chan struct{}),
	}
}

// Start implements partyline.Broker. It does not wait for Redis: while
// Redis is unreachable the broker keeps trying to connect.
func (b *Broker) Start(h partyline.BrokerHandler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return errors.New("redis: start: broker closed")
	case b.handler != nil:
		return errors.New("redis: start: broker already started")
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	// On failure PubSub keeps the channel and subscribes it when it connects.
	b.pubsub = b.rdb.Subscribe(ctx, b.sentinel)
	b.handler = h
	ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(2)
	go b.receive(ctx)
	go b.ping(ctx)
	return nil
}

// Publish implements partyline.Broker. It gives up after Options.Timeout.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte) error {
	_, err := b.PublishCount(ctx, topic, payload)
	return err
}

// PublishCount implements partyline.PublishCounter with the answer of
// Redis's PUBLISH: how many clients are subscribed to topic's channel. Each
// node subscribes with one PubSub connection of its own, and only to
// channels (never patterns), so that is the number of nodes — as long as
// nothing else listens to the channel, such as redis-cli's SUBSCRIBE or a
// PSUBSCRIBE matching it, which Redis counts too.
func (b *Broker) PublishCount(ctx context.Context, topic string, payload []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	n, err := b.rdb.Publish(ctx, b.prefix+topic, payload).Result()
	if err != nil {
		return 0, unavailable("publish", err)
	}
	return int(n), nil
}

// Subscribe implements partyline.Broker. It returns once Redis has
// confirmed the subscription, so every event published after it returns is
// delivered. It returns an error wrapping partyline.ErrUnavailable, and
// leaves topic unsubscribed, when that takes longer than Options.Timeout.
func (b *Broker) Subscribe(ctx context.Context, topic string) error {
	pubsub, err := b.started()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	channel := b.prefix + topic
	confirmed := b.await(channel)
	b.setTopic(topic, true)
	err = pubsub.Subscribe(ctx, channel)
	if err != nil {
		// A write that failed on a broken connection made go-redis dial a
		// new one, resubscribed without channel: try once more there.
		err = pubsub.Subscribe(ctx, channel)
	}
	if err == nil {
		select {
		case <-confirmed:
			return nil
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	b.setTopic(topic, false)
	b.stopAwaiting(channel, confirmed)
	pubsub.Unsubscribe(ctx, channel) // forget it: never resubscribed
	return unavailable("subscribe", err)
}

// await returns a channel closed when Redis next confirms a subscription
// to channel.
func (b *Broker) await(channel string) chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := make(chan struct{})
	b.waiters[channel] = append(b.waiters[channel], c)
	return c
}

// stopAwaiting forgets c, returned by await(channel).
func (b *Broker) stopAwaiting(channel string, c chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiters[channel] = slices.DeleteFunc(b.waiters[channel], func(w chan struct{}) bool { return w == c })
	if len(b.waiters[channel]) == 0 {
		delete(b.waiters, channel)
	}
}

// confirm wakes the Subscribes awaiting channel.
func (b *Broker) confirm(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.waiters[channel] {
		close(c)
	}
	delete(b.waiters, channel)
}

// Unsubscribe implements partyline.Broker. Delivery stops at once. It
// always succeeds: when Redis cannot be told, go-redis drops the
// connection, and the next one is made without topic.
func (b *Broker) Unsubscribe(ctx context.Context, topic string) error {
	pubsub, err := b.started()
	if err != nil {
		return err
	}
	b.setTopic(topic, false)
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	// go-redis waits for its PubSub's lock, which the receiving goroutine
	// holds while it reconnects to a Redis that hangs, without regard to
	// ctx: wait for it on another goroutine, which ends when the lock is
	// free or the PubSub closed, so that a closing room does not wait on.
	done := make(chan struct{})
	go func() {
		defer close(done)
		pubsub.Unsubscribe(ctx, b.prefix+topic)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return unavailable("unsubscribe", ctx.Err())
	}
}

// Ping implements partyline.Pinger.
func (b *Broker) Ping(ctx context.Context) error {
	return ping(ctx, b.rdb, b.timeout)
}

// Close implements partyline.Broker: it closes the PubSub connection and
// waits for the broker's goroutines, so it must not be called from the
// handler. It leaves the Client's pool open.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	cancel, pubsub := b.cancel, b.pubsub
	b.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	pubsub.Close() // ends a receive in progress
	b.wg.Wait()
	return nil
}

// started returns the PubSub, or an error before Start or after Close.
func (b *Broker) started() (*goredis.PubSub, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return nil, errors.New("redis: broker closed")
	case b.pubsub == nil:
		return nil, errors.New("redis: broker not started")
	}
	return b.pubsub, nil
}

// setTopic records whether topic's events are delivered.
func (b *Broker) setTopic(topic string, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if on {
		b.topics[topic] = struct{}{}
	} else {
		delete(b.topics, topic)
	}
}

// delivered reports whether topic's events are delivered.
func (b *Broker) delivered(topic string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.topics[topic]
	return ok
}

// receive reads the PubSub connection until ctx ends, backing off while
// Redis is unreachable.
func (b *Broker) receive(ctx context.Context) {
	defer b.wg.Done()
	backoff := minBackoff
	for ctx.Err() == nil {
		msg, err := b.receiveOne(ctx)
		if err != nil {
			b.lost = true
			sleep(ctx, backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		b.dispatch(msg)
	}
}

// receiveOne returns the connection's next message. A connection silent
// past the deadline fails the read, and go-redis replaces it.
func (b *Broker) receiveOne(ctx context.Context) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, pingInterval+2*b.timeout)
	defer cancel()
	return b.pubsub.Receive(ctx)
}

// dispatch hands an event to the handler and watches for reconnects.
func (b *Broker) dispatch(msg any) {
	switch msg := msg.(type) {
	case *goredis.Message:
		topic, ok := strings.CutPrefix(msg.Channel, b.prefix)
		if ok && b.delivered(topic) {
			b.handler.HandleEvent(topic, []byte(msg.Payload))
		}
	case *goredis.Subscription:
		if msg.Kind == "subscribe" {
			b.confirm(msg.Channel)
		}
		if msg.Kind == "subscribe" && msg.Channel == b.sentinel {
			reconnected := b.confirmations > 0 || b.lost
			b.confirmations++
			b.lost = false
			if reconnected {
				b.handler.HandleReconnect()
			}
		}
	}
}

// ping keeps the PubSub connection from going silent until ctx ends. A
// failed ping makes go-redis replace the connection.
func (b *Broker) ping(ctx context.Context) {
	defer b.wg.Done()
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, b.timeout)
			b.pubsub.Ping(pctx)
			cancel()
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
