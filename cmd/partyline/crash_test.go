package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// buildBinary compiles the real partyline binary once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "partyline")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is a partyline binary running on a loopback port.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs bytes.Buffer
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &process{addr: ln.Addr().String()}
	ln.Close()
	p.cmd = exec.Command(bin, append([]string{"--addr", p.addr}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get("http://" + p.addr + "/health"); err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("partyline did not start:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAckedMessagesSurviveSIGKILL sends chats, waits for their acks, kills
// the server with SIGKILL, restarts it on the same file and recovers every
// acked message with since.
func TestAckedMessagesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	store := "sqlite:" + filepath.Join(t.TempDir(), "crash.db")
	// The 300 chats sent at once come back as 600 frames (echoes and
	// acks), which the server sends faster than a client under the race
	// detector reads them: its queue holds them all, so that this test is
	// about durability, not the slow-consumer rule.
	p := startProcess(t, bin, "--store", store, "--rate-limit", "-1", "--send-queue", "1024")
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/ws?username=alice&room=lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	const total = 300
	for i := range total {
		ws.WriteJSON(map[string]any{"type": "chat", "content": fmt.Sprint("message ", i), "id": i})
	}
	acked := map[uint64]string{} // seq → content
	for len(acked) < total {
		for _, f := range readFrames(t, ws) {
			if f["type"] == "ack" {
				acked[uint64(f["seq"].(float64))] = fmt.Sprint("message ", int(f["id"].(float64)))
			}
		}
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	ws.Close()

	p = startProcess(t, bin, "--store", store)
	ws, _, err = websocket.DefaultDialer.Dial("ws://"+p.addr+"/ws?username=alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"type": "join", "room": "lobby", "since": 0})
	recovered := map[uint64]string{}
	for len(recovered) < total {
		for _, f := range readFrames(t, ws) {
			switch f["type"] {
			case "joined":
				if f["recovered"] != true || f["seq"] != float64(total) {
					t.Fatalf("joined after restart = %v, want recovered at seq %d", f, total)
				}
			case "chat":
				recovered[uint64(f["seq"].(float64))] = f["content"].(string)
			}
		}
	}
	for seq, content := range acked {
		if recovered[seq] != content {
			t.Fatalf("acked seq %d (%q) recovered as %q", seq, content, recovered[seq])
		}
	}
}

// readFrames reads one WebSocket message and splits its batched frames.
func readFrames(t *testing.T, ws *websocket.Conn) []map[string]any {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var frames []map[string]any
	for _, line := range bytes.Split(data, []byte("\n")) {
		var f map[string]any
		if err := json.Unmarshal(line, &f); err != nil {
			t.Fatalf("frame %q: %v", line, err)
		}
		frames = append(frames, f)
	}
	return frames
}

// TestUnusableStoreFileStopsStartup checks the one clear line and exit 1.
func TestUnusableStoreFileStopsStartup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	held := filepath.Join(dir, "held.db")
	startProcess(t, bin, "--store", "sqlite:"+held)
	notDB := filepath.Join(dir, "notes.txt")
	os.WriteFile(notDB, []byte("these are my notes, not a database\n"), 0o600)
	readOnly := filepath.Join(dir, "ro")
	os.Mkdir(readOnly, 0o500)
	for name, path := range map[string]string{
		"locked by another process": held,
		"not a partyline database":  notDB,
		"unwritable":                filepath.Join(readOnly, "x.db"),
	} {
		if name == "unwritable" && os.Geteuid() == 0 {
			continue // root writes anywhere
		}
		out, err := exec.Command(bin, "--addr", "127.0.0.1:0", "--store", "sqlite:"+path).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("%s: exit %v, want 1", name, err)
		}
		if lines := bytes.Count(bytes.TrimSpace(out), []byte("\n")) + 1; lines != 1 || !bytes.Contains(out, []byte(filepath.Base(path))) {
			t.Errorf("%s: output %q, want one line naming the file", name, out)
		}
	}
}
