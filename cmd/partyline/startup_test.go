package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/partyline/partyline/internal/pgtest"
)

// The tests of this file start partyline while its PostgreSQL or Redis is
// down (SPEC §13), then start a real server on the port it points at.

// readyWithin bounds how long a node may take to become ready once its
// backend is up: one retry at the 5 s backoff ceiling, plus the attempt.
const readyWithin = 20 * time.Second

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// get returns the status and body of GET http://addr+path.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// checkWaiting checks what a node whose backend named backend is not
// there yet answers: /health 200, /ready 503 unavailable naming the
// backend, and a WebSocket request 503 unavailable before the upgrade.
func checkWaiting(t *testing.T, addr, backend string) {
	t.Helper()
	if status, body := get(t, addr, "/health"); status != http.StatusOK {
		t.Fatalf("/health while the %s is down = %d %s, want 200", backend, status, body)
	}
	status, body := get(t, addr, "/ready")
	var ready struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal([]byte(body), &ready)
	if status != http.StatusServiceUnavailable || ready.Error.Code != "unavailable" || !strings.HasPrefix(ready.Error.Message, backend+": ") {
		t.Fatalf("/ready while the %s is down = %d %s, want 503 unavailable with a message starting %q", backend, status, body, backend+": ")
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?username=alice&room=lobby", nil)
	if err == nil {
		ws.Close()
		t.Fatalf("a WebSocket client connected while the %s is down, want 503", backend)
	}
	if resp == nil {
		t.Fatalf("WebSocket dial while the %s is down: %v, with no HTTP answer", backend, err)
	}
	defer resp.Body.Close()
	var refusal struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&refusal)
	if resp.StatusCode != http.StatusServiceUnavailable || refusal.Error.Code != "unavailable" {
		t.Fatalf("WebSocket dial while the %s is down = %d %q, want 503 unavailable", backend, resp.StatusCode, refusal.Error.Code)
	}
}

// awaitReady polls /ready until it answers 200, failing t after readyWithin.
func awaitReady(t *testing.T, addr string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		status, body := get(t, addr, "/ready")
		if status == http.StatusOK {
			return time.Since(start)
		}
		if time.Since(start) > readyWithin {
			t.Fatalf("/ready still %d %s %s after the backend came up", status, body, readyWithin)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkChat connects a WebSocket client, sends a chat and waits for its
// ack and its delivery.
func checkChat(t *testing.T, addr string) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?username=alice&room=lobby", nil)
	if err != nil {
		t.Fatalf("WebSocket dial once ready: %v", err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"type": "chat", "room": "lobby", "content": "made it", "id": "m1"})
	var acked, delivered bool
	for !acked || !delivered {
		for _, f := range readFrames(t, ws) {
			switch {
			case f["type"] == "ack" && f["id"] == "m1":
				acked = true
			case f["type"] == "chat" && f["content"] == "made it":
				delivered = true
			case f["type"] == "error":
				t.Fatalf("chat once ready answered %v", f)
			}
		}
	}
}

// child is a server process this test started; it is stopped by its PID
// when the test ends.
type child struct {
	cmd    *exec.Cmd
	logs   bytes.Buffer
	exited chan struct{}
}

// startChild starts cmd and stops it with stop, then SIGKILL, when t ends.
func startChild(t *testing.T, cmd *exec.Cmd, stop syscall.Signal) *child {
	t.Helper()
	c := &child{cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &c.logs, &c.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, stop)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-c.exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), c.logs.String())
		}
	})
	return c
}

// TestStartsBeforeRedis: a node pointed at a port where no Redis listens
// starts, is live but not ready, refuses WebSocket clients with 503
// unavailable; when a redis-server starts on that port, it connects by
// itself, becomes ready and serves a chat.
func TestStartsBeforeRedis(t *testing.T) {
	store := pgtest.Schema(t)
	redisServer, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not on PATH; this test starts its own Redis late")
	}
	port := freePort(t)
	addr, _ := startBinary(t, "--store", store, "--broker", fmt.Sprintf("redis://127.0.0.1:%d/0", port), "--presence-ttl", "2s")
	checkWaiting(t, addr, "broker")

	startChild(t, exec.Command(redisServer, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()), syscall.SIGTERM)
	took := awaitReady(t, addr)
	t.Logf("ready %s after redis-server started", took.Round(time.Millisecond))
	checkChat(t, addr)
}

// TestStartsBeforePostgres: a node pointed at a port where no PostgreSQL
// listens starts, is live but not ready, refuses WebSocket clients with
// 503 unavailable; when a PostgreSQL server starts on that port, it
// connects by itself, creates its tables, becomes ready and serves a chat.
func TestStartsBeforePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server; skipped with -short")
	}
	pg := preparePostgres(t)
	addr, _ := startBinary(t, "--store", pg.url(), "--broker", "memory")
	checkWaiting(t, addr, "store")

	pg.start(t)
	took := awaitReady(t, addr)
	t.Logf("ready %s after postgres started", took.Round(time.Millisecond))
	checkChat(t, addr)
}

// postgresServer is a PostgreSQL cluster of this test, in a directory of
// its own, run by the postgres user when the test runs as root.
type postgresServer struct {
	bin  string // the directory of initdb and postgres
	dir  string
	port int
	cred *syscall.Credential // nil: run as this user
}

// preparePostgres creates a PostgreSQL cluster on a free port, without
// starting it, or skips t when PostgreSQL is not installed.
func preparePostgres(t *testing.T) *postgresServer {
	t.Helper()
	pg := &postgresServer{bin: postgresBin(t), port: freePort(t), cred: postgresUser(t)}
	dir, err := os.MkdirTemp("", "partyline-postgres-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg.dir = dir
	if pg.cred != nil {
		if err := os.Chown(dir, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	initdb := pg.command("initdb", "-D", dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	return pg
}

// url is the URL of the server's postgres database.
func (pg *postgresServer) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// start starts the server; it is stopped (fast shutdown) when t ends.
func (pg *postgresServer) start(t *testing.T) {
	t.Helper()
	cmd := pg.command("postgres", "-D", pg.dir, "-p", strconv.Itoa(pg.port), "-k", pg.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	startChild(t, cmd, syscall.SIGINT)
}

// command returns a command running the PostgreSQL program name as the
// cluster's user.
func (pg *postgresServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	return cmd
}

// postgresBin returns the directory of initdb and postgres, or skips t.
func postgresBin(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(path)
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		t.Skip("initdb is neither on PATH nor in /usr/lib/postgresql/*/bin; this test starts its own PostgreSQL late")
	}
	return filepath.Dir(found[len(found)-1])
}

// postgresUser returns the credentials of the postgres user when the test
// runs as root, which PostgreSQL refuses to run as; nil otherwise.
func postgresUser(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("running as root with no postgres user to run PostgreSQL as")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// TestBadBackendSettingsStopStartup: what waiting cannot mend stops
// start-up at once with one line naming the setting, even while another
// backend is being waited for.
func TestBadBackendSettingsStopStartup(t *testing.T) {
	unreachable := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable", freePort(t))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", "postgres://postgres@127.0.0.1:notaport/x"}, "store: "},
		{[]string{"--store", "mysql://127.0.0.1/x"}, "store: "},
		{[]string{"--store", unreachable, "--broker", "redis://127.0.0.1:notaport/0"}, "broker: "},
		{[]string{"--store", unreachable, "--broker", "nats://127.0.0.1:4222"}, "broker: "},
	} {
		start := time.Now()
		err := run(t.Context(), append([]string{"--addr", "127.0.0.1:0"}, tc.args...), io.Discard, io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("partyline %s: %v, want one line starting %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("partyline %s: failed after %s, want at once", strings.Join(tc.args, " "), took)
		}
	}
}
