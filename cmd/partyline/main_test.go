package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestVersionAndHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version"}, &out, &out); err != nil || !strings.HasPrefix(out.String(), "partyline ") {
		t.Fatalf("version: %q, %v", out.String(), err)
	}
	out.Reset()
	var errOut bytes.Buffer
	if err := run(t.Context(), []string{"--help"}, &out, &errOut); err != nil || errOut.Len() > 0 {
		t.Fatalf("--help: %v, and on stderr %q; want the settings on stdout", err, errOut.String())
	}
	for _, name := range []string{"-addr", "-store", "-broker", "-jwt-secret", "-send-queue", "-max-lag", "-history-size", "-config",
		"-webhook-url", "-webhook-secret", "-webhook-events", "-webhook-leave-delay", "-webhook-timeout", "-webhook-retry-for",
		"-hook-connect", "-hook-join", "-hook-publish", "-hook-headers", "-hook-timeout"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("--help does not list %s", name)
		}
	}
	if err := run(t.Context(), []string{"dance"}, &out, &out); err == nil {
		t.Fatal("an unknown command succeeded")
	}
	out.Reset()
	err := run(t.Context(), []string{"--send-queue", "abc"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "send-queue") || out.Len() > 0 {
		t.Errorf("a bad flag: %v, and printed %d bytes; want one error naming send-queue and nothing printed", err, out.Len())
	}
	if line := errorLine(err); strings.Count(line, "partyline:") != 1 {
		t.Errorf("reported as %q, want the program named once", line)
	}
	if line := errorLine(fmt.Errorf("partyline: %w", err)); strings.Count(line, "partyline:") != 1 {
		t.Errorf("a library error reported as %q, want the program named once", line)
	}
}

func TestClusterNeedsASharedStore(t *testing.T) {
	err := run(t.Context(), []string{"--broker", "redis://127.0.0.1:6379/0", "--store", "sqlite:" + t.TempDir() + "/x.db"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "shared store") {
		t.Fatalf("redis broker with a SQLite store: %v, want a refusal naming the shared store", err)
	}
}

// startBinary runs the real command path on a free loopback port until the
// test ends, and returns its address.
func startBinary(t *testing.T, args ...string) (addr string, stop func() error) {
	t.Helper()
	return startBinaryWith(t, http.DefaultClient, "http", args...)
}

// startBinaryWith is startBinary checking /health with client over scheme.
func startBinaryWith(t *testing.T, client *http.Client, scheme string, args ...string) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"--addr", addr}, args...), io.Discard, io.Discard) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := client.Get(scheme + "://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("server did not come up: %v", <-done)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

func TestServeAndShutDownGracefully(t *testing.T) {
	addr, stop := startBinary(t, "--store", "sqlite:"+t.TempDir()+"/p.db")
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?username=alice&room=lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"type": "chat", "content": "hello", "id": 1})
	for _, path := range []string{"/ready", "/", "/partyline.js", "/metrics"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	for _, r := range []struct{ method, path string }{{"POST", "/ws"}, {"PUT", "/ws/lobby"}, {"PUT", "/sse/x"}, {"DELETE", "/sse"}} {
		req, _ := http.NewRequest(r.method, "http://"+addr+r.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"method_not_allowed"`) {
			t.Errorf("%s %s: %d %q, want 405 method_not_allowed", r.method, r.path, resp.StatusCode, body)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("run after shutdown: %v", err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != 1001 {
				t.Fatalf("close code %d, want 1001", ce.Code)
			}
			break
		}
		if err != nil {
			t.Fatalf("read: %v, want close 1001", err)
		}
	}
}

func TestSlowHeadersAreCutOff(t *testing.T) {
	readHeaderTimeout = 300 * time.Millisecond
	defer func() { readHeaderTimeout = 10 * time.Second }()
	addr, _ := startBinary(t, "--store", "memory")
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	cut := make(chan time.Duration, 1)
	go func() { // a slowloris: one header byte every 100 ms
		start := time.Now()
		for _, b := range []byte("GET /ws?username=slow HTTP/1.1\r\nHost: x\r\nX-Slow: 1") {
			if _, err := slow.Write([]byte{b}); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		slow.SetReadDeadline(time.Now().Add(5 * time.Second))
		slow.Read(make([]byte, 1024)) // returns once the server has hung up
		cut <- time.Since(start)
	}()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?username=fine", nil)
	if err != nil {
		t.Fatalf("a normal client could not connect while a slowloris was connected: %v", err)
	}
	ws.Close()
	if d := <-cut; d > 3*time.Second {
		t.Fatalf("the slowloris was connected for %s, want it cut off after the header timeout", d)
	}
}

// TestMetricsMoveWithTraffic scrapes /metrics before and after real traffic.
func TestMetricsMoveWithTraffic(t *testing.T) {
	addr, _ := startBinary(t, "--store", "memory")
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?username=alice&room=lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for i := range 3 {
		ws.WriteJSON(map[string]any{"type": "chat", "content": "hi", "id": i})
	}
	ws.WriteJSON(map[string]any{"type": "dance"})
	got := map[string]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for want := []string{
		`partyline_messages_in_total{type="chat"} 3`,
		`partyline_deliveries_total 3`,
		`partyline_refusals_total{code="unknown_type"} 1`,
		`partyline_connections 1`,
		`partyline_rooms 1`,
		`partyline_store_latency_seconds_count{op="append"} 3`,
	}; len(got) < len(want); {
		if time.Now().After(deadline) {
			t.Fatalf("after traffic, /metrics lacks some of %q (has %v)", want, got)
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range want {
			if strings.Contains(string(body), line+"\n") {
				got[line] = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
