package clustertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The partyline binary, built once for the tests that run real processes.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// binary builds cmd/partyline from this module, once, and returns its path.
func binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the partyline binary; skipped with -short")
	}
	build.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			build.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if build.dir, build.err = os.MkdirTemp("", "partyline-clustertest-"); build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "partyline")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/partyline")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/partyline: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// process is a child process this test started; it is killed when the test
// ends, and its output shown if the test failed.
type process struct {
	name   string
	cmd    *exec.Cmd
	logs   *logBuffer
	exited chan struct{}
}

func startProcess(t testing.TB, name, path string, args ...string) *process {
	t.Helper()
	p := &process{name: name, logs: &logBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.logs)
		}
	})
	return p
}

// stop asks the process to end with SIGTERM, by its PID, and kills it if
// it has not ended after a few seconds. A partyline node that shuts down
// gracefully takes its users out of presence, so a test on the machine's
// Redis leaves nothing behind.
func (p *process) stop(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.kill(t)
	}
}

// kill sends SIGKILL to the process, by its PID, and waits for it to exit.
func (p *process) kill(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Errorf("kill %s (pid %d): %v", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(waitTime):
		t.Fatalf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// partylineNode is a partyline binary serving on a loopback port.
type partylineNode struct {
	*process
	addr string
}

func (n *partylineNode) url() string { return "ws://" + n.addr }

// dial connects user to the node with the path and query given.
func (n *partylineNode) dial(t testing.TB, user, pathAndQuery string) *client {
	t.Helper()
	c, err := n.dialErr(t, user, pathAndQuery)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (n *partylineNode) dialErr(t testing.TB, user, pathAndQuery string) (*client, error) {
	sep := "?"
	if strings.Contains(pathAndQuery, "?") {
		sep = "&"
	}
	return dialErr(t, user+"@"+n.name, n.url(), pathAndQuery+sep+"username="+user)
}

// ready returns the status and body of GET /ready.
func (n *partylineNode) ready() (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+n.addr+"/ready", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// startNodes starts one partyline binary per name, with args, and waits
// until each answers /ready.
func startNodes(t testing.TB, names []string, args ...string) []*partylineNode {
	t.Helper()
	bin := binary(t)
	var nodes []*partylineNode
	for _, name := range names {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		p := startProcess(t, "node "+name, bin, append([]string{"serve", "--addr", addr, "--log-level", "warn", "--shutdown-grace", "3s"}, args...)...)
		nodes = append(nodes, &partylineNode{process: p, addr: addr})
	}
	for _, n := range nodes {
		n.name = strings.TrimPrefix(n.name, "node ")
		waitUntil(t, 3*waitTime, "node "+n.name+" to be ready", func() bool {
			select {
			case <-n.exited:
				t.Fatalf("node %s exited:\n%s", n.name, n.logs)
			default:
			}
			status, _ := n.ready()
			return status == http.StatusOK
		})
	}
	return nodes
}

// redisServer is a redis-server child process of this test, for breaking
// Redis without touching the machine's own.
type redisServer struct {
	*process
	path string
	port int
	dir  string
}

// startRedisServer starts redis-server on a free loopback port, without
// persistence, or skips t when redis-server is not installed.
func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not on PATH; the Redis restart test runs its own Redis server")
	}
	r := &redisServer{path: path, port: freePort(t), dir: t.TempDir()}
	r.start(t)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// start starts (or restarts) the server on its port and waits for it.
func (r *redisServer) start(t testing.TB) {
	t.Helper()
	r.process = startProcess(t, "redis-server", r.path,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", r.dir)
	rdb := newRedisClient(t, r.url())
	defer rdb.Close()
	waitUntil(t, waitTime, "redis-server to answer", func() bool {
		select {
		case <-r.exited:
			t.Fatalf("redis-server exited:\n%s", r.logs)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return rdb.Ping(ctx).Err() == nil
	})
}

// TestNodeKilled: three partyline processes share Redis and PostgreSQL;
// one is killed with SIGKILL while publishers on all three write. Its
// clients resume on another node with since, losing nothing acked and
// seeing nothing twice, and a user it held alone leaves presence within
// the presence TTL.
func TestNodeKilled(t *testing.T) {
	redisURL, postgresURL := services(t)
	id := suffix()
	room := "killed-" + id
	user := func(name string) string { return name + "-" + id } // channels are global in Redis
	nodes := startNodes(t, []string{"A", "B", "C"},
		"--store", newSchema(t, postgresURL), "--broker", redisURL,
		"--presence-ttl", presenceTTL.String(), "--rate-limit", "-1", "--history-size", "0")
	a, b, victim := nodes[0], nodes[1], nodes[2]

	subs := make(map[string][]*client)
	for _, n := range nodes {
		for i := range 2 {
			c := n.dial(t, user(fmt.Sprintf("sub%s%d", n.name, i)), "/ws/"+room)
			c.expectJoin(room)
			subs[n.name] = append(subs[n.name], c)
		}
	}
	var pubs []*publisher
	for _, n := range nodes {
		c := n.dial(t, user("pub"+n.name), "/ws/"+room)
		c.expectJoin(room)
		var reconnect func() (*client, error)
		if n == victim {
			reconnect = func() (*client, error) {
				c, err := b.dialErr(t, user("pub"+n.name), "/ws/"+room)
				if err == nil {
					_, err = c.awaitErr(waitTime, func(f frame) bool { return f.Type == "online_users" })
				}
				return c, err
			}
		}
		pubs = append(pubs, startPublisher(c, "pub"+n.name, room, 10*time.Millisecond, 10000, reconnect))
	}
	defer func() {
		for _, p := range pubs {
			p.finish(t)
		}
	}()
	observer := subs["A"][0]
	observer.untilSeq(room, 30)

	victim.kill(t)
	killed := time.Now()

	// The victim's first subscriber notices and resumes on node A.
	mover, gone := subs["C"][0], subs["C"][1]
	mover.closeCode()
	before := mover.chats[room]
	last := before[len(before)-1].Seq
	resumed := a.dial(t, user("subC0"), "/ws")
	resumed.joinSince(room, last)

	// The victim's other subscriber does not come back: within the presence
	// TTL the others see it leave.
	_, err := observer.awaitErr(presenceTTL+time.Second, userEvent("user_left", room, user("subC1")))
	if err != nil {
		t.Fatalf("no user_left for %s within %s of the SIGKILL: %v", user("subC1"), presenceTTL+time.Second, err)
	}
	t.Logf("user_left for the dead node's user %s after %s (presence TTL %s)", gone.name, time.Since(killed).Round(time.Millisecond), presenceTTL)
	observer.send(map[string]any{"type": "presence", "room": room})
	users := observer.awaitType("online_users").Users
	for _, name := range []string{"subA0", "subB1", "subC0", "pubA", "pubC"} {
		if !contains(users, user(name)) {
			t.Fatalf("online_users after the reap = %q, want %s among them (still connected somewhere)", users, user(name))
		}
	}
	if contains(users, user("subC1")) {
		t.Fatalf("online_users after the reap = %q, still listing the dead node's user %s", users, user("subC1"))
	}

	// Traffic goes on, then stops; everyone has everything exactly once.
	observer.untilSeq(room, observer.lastSeq(room)+30)
	var top uint64
	for _, p := range pubs {
		p.finish(t)
		top = max(top, p.maxSeq())
		t.Logf("%s: %d acked", p.name, p.ackedCount())
	}
	var all []*client
	for _, name := range []string{"A", "B"} {
		all = append(all, subs[name]...)
	}
	for _, c := range all {
		c.untilSeq(room, top)
	}
	canon := canonOf(observer.chats[room])
	for _, c := range all {
		checkStream(t, c.name, c.chats[room], 1, top, canon)
	}
	resumed.untilSeq(room, top)
	checkStream(t, mover.name+" before the kill", before, 1, last, canon)
	checkStream(t, resumed.name+" resumed on A", resumed.chats[room], last+1, top, canon)
	for _, p := range pubs {
		p.checkAcks(t, canon)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestRedisRestart: Redis dies while publishers on three partyline
// processes write, and comes back empty on the same port. Publishing never
// hangs, /ready names the broker meanwhile, the nodes recover by
// themselves, every subscriber ends up with every message once and in
// order, and what was acked during the outage is recoverable with since.
func TestRedisRestart(t *testing.T) {
	_, postgresURL := services(t)
	rs := startRedisServer(t)
	const room = "outage"
	nodes := startNodes(t, []string{"A", "B", "C"},
		"--store", newSchema(t, postgresURL), "--broker", rs.url(),
		"--presence-ttl", presenceTTL.String(), "--rate-limit", "-1", "--history-size", "0")

	var subs []*client
	var pubs []*publisher
	for _, n := range nodes {
		c := n.dial(t, "sub"+n.name, "/ws/"+room)
		c.expectJoin(room)
		subs = append(subs, c)
	}
	for _, n := range nodes {
		c := n.dial(t, "pub"+n.name, "/ws/"+room)
		c.expectJoin(room)
		pubs = append(pubs, startPublisher(c, "pub"+n.name, room, 20*time.Millisecond, 10000, nil))
	}
	defer func() {
		for _, p := range pubs {
			p.finish(t)
		}
	}()
	subs[0].untilSeq(room, 20)

	var beforeOutage uint64
	for _, p := range pubs {
		beforeOutage = max(beforeOutage, p.maxSeq())
	}
	counts := ackCounts(pubs)
	rs.kill(t)
	outage := time.Now()

	// Publishing goes on: acked (stored, delivered on the node) without
	// waiting for Redis.
	waitUntil(t, waitTime, "10 acks per publisher during the outage", func() bool { return ackedSince(pubs, counts) >= 10 })
	status, body := nodes[0].ready()
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "broker") {
		t.Fatalf("/ready during the outage = %d %s, want 503 naming the broker", status, body)
	}
	// A new connection needs Redis (presence, its user's channel): it gets
	// an error and a close, not a hang.
	start := time.Now()
	newcomer := nodes[2].dial(t, "newcomer", "/ws")
	if f := newcomer.expect("error"); f.Code != "unavailable" {
		t.Fatalf("a connection opened during the outage got %v, want error unavailable", f)
	}
	if code := newcomer.closeCode(); code != 1011 {
		t.Fatalf("a connection opened during the outage closed with %d, want 1011", code)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a connection opened during the outage took %s to be refused, want no hang", took)
	}
	counts = ackCounts(pubs)

	t.Logf("outage: %s", time.Since(outage).Round(time.Millisecond))
	rs.start(t)
	restarted := time.Now()
	for _, n := range nodes {
		waitUntil(t, waitTime, "node "+n.name+" to be ready again", func() bool {
			status, _ := n.ready()
			return status == http.StatusOK
		})
	}
	t.Logf("every node ready %s after the restart", time.Since(restarted).Round(time.Millisecond))
	waitUntil(t, waitTime, "10 acks per publisher after the restart", func() bool { return ackedSince(pubs, counts) >= 10 })
	// Presence, lost with Redis's data, is restored by the nodes.
	waitUntil(t, waitTime, "presence to list every user again", func() bool {
		subs[1].send(map[string]any{"type": "presence", "room": room})
		users := subs[1].awaitType("online_users").Users
		return len(users) == 6
	})

	var top uint64
	for _, p := range pubs {
		p.finish(t)
		top = max(top, p.maxSeq())
		t.Logf("%s: %d acked, errors: %q, %d answers slower than %s, slowest %s",
			p.name, p.ackedCount(), p.failureSummary(), p.slow, slowAnswer, p.slowest)
		if p.slowest > 5*time.Second {
			t.Errorf("%s waited %s for an answer, want no hang", p.name, p.slowest)
		}
	}
	for _, c := range subs {
		c.untilSeq(room, top)
	}
	canon := canonOf(subs[0].chats[room])
	for _, c := range subs {
		checkStream(t, c.name, c.chats[room], 1, top, canon)
	}
	for _, p := range pubs {
		p.checkAcks(t, canon)
	}

	// Live delivery between nodes is back: a chat on node A reaches B and
	// C, where nothing local would make them look in the store.
	subs[0].send(map[string]any{"type": "chat", "room": room, "content": "after the restart"})
	top++
	canon[top] = "after the restart"
	sent := time.Now()
	for _, c := range subs {
		c.untilSeq(room, top)
		checkStream(t, c.name, c.chats[room], 1, top, canon)
	}
	t.Logf("a chat after the restart reached every node in %s", time.Since(sent).Round(time.Millisecond))

	// What was acked during the outage is in the store, for any node.
	late := nodes[1].dial(t, "late", "/ws")
	late.joinSince(room, beforeOutage)
	late.untilSeq(room, top)
	checkStream(t, late.name, late.chats[room], beforeOutage+1, top, canon)
}

// ackCounts returns how many chats each publisher has had acked.
func ackCounts(pubs []*publisher) []int {
	counts := make([]int, len(pubs))
	for i, p := range pubs {
		counts[i] = p.ackedCount()
	}
	return counts
}

// ackedSince returns the fewest acks any publisher got since counts.
func ackedSince(pubs []*publisher, counts []int) int {
	least := -1
	for i, p := range pubs {
		if n := p.ackedCount() - counts[i]; least < 0 || n < least {
			least = n
		}
	}
	return least
}
