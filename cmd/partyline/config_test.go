package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestDefaultsMatchTheSpec(t *testing.T) {
	c, err := loadConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8080" || c.Store != "sqlite:./partyline.db" || c.Broker != "memory" ||
		c.PingInterval != 54*time.Second || c.PongWait != 60*time.Second || c.WriteWait != 10*time.Second ||
		c.MaxMessageSize != 16384 || c.SendQueue != 256 || c.MaxLag != 5*time.Second || c.RateLimit != 20 || c.RateBurst != 40 ||
		c.MaxRooms != 100 || c.HistorySize != 1000 || c.PresenceTTL != 60*time.Second || c.PresenceListMax != 500 ||
		c.ShutdownGrace != 10*time.Second || c.LogLevel != "info" || c.LogFormat != "text" {
		t.Fatalf("defaults = %+v, want those of docs/protocol.md §2", c)
	}
}

func TestFlagsWinOverEnvironmentWhichWinsOverFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "partyline.json")
	os.WriteFile(file, []byte(`{"addr": ":9000", "history-size": 500, "send-queue": 64, "jwt-public-key": ["a.pem", "b.pem"]}`), 0o600)
	c, err := loadConfig([]string{"--config", file, "--send-queue", "32"},
		env(map[string]string{"PARTYLINE_HISTORY_SIZE": "700", "PARTYLINE_SEND_QUEUE": "48"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9000" || c.HistorySize != 700 || c.SendQueue != 32 {
		t.Fatalf("addr %q history %d queue %d; want :9000 from the file, 700 from env, 32 from flags", c.Addr, c.HistorySize, c.SendQueue)
	}
	if got := strings.Join(c.JWTPublicKeys.values, ","); got != "a.pem,b.pem" {
		t.Fatalf("jwt-public-key from a file array = %q, want a.pem,b.pem", got)
	}
	c, err = loadConfig([]string{"--jwt-public-key", "c.pem"}, env(map[string]string{"PARTYLINE_CONFIG": file, "PARTYLINE_JWT_PUBLIC_KEY": "d.pem"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.JWTPublicKeys.values, ","); got != "c.pem" {
		t.Fatalf("a repeatable flag given on the command line = %q, want it to replace the lower layers: c.pem", got)
	}
}

func TestFileNumbersAsWritten(t *testing.T) {
	file := filepath.Join(t.TempDir(), "partyline.json")
	os.WriteFile(file, []byte(`{"max-message-size": 1048576, "history-size": 2000000, "api-key": 1234567}`), 0o600)
	c, err := loadConfig([]string{"--config", file}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxMessageSize != 1048576 || c.HistorySize != 2000000 || c.APIKey != "1234567" {
		t.Errorf("max-message-size %d, history-size %d, api-key %q; want the file's 1048576, 2000000 and 1234567",
			c.MaxMessageSize, c.HistorySize, c.APIKey)
	}
	os.WriteFile(file, []byte(`{"addr": ":9000"} {"addr": ":9001"}`), 0o600)
	if _, err := loadConfig([]string{"--config", file}, env(nil), io.Discard); err == nil {
		t.Error("a file with a second object after the first was taken")
	}
}

func TestBadSettingsNameTheSetting(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(file, []byte(`{"adress": ":1"}`), 0o600)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--ping-interval", "soon"}, nil, "ping-interval"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{[]string{"--tls-cert", "x.pem"}, nil, "tls-key"},
		{[]string{"--presence-ttl", "0s"}, nil, "presence-ttl"},
		{[]string{"--presence-list-max", "0"}, nil, "presence-list-max"},
		{[]string{"--compression", "maybe"}, nil, "compression"},
		{[]string{"--io-uring", "on"}, nil, "io-uring"},
		{[]string{"--transports", "websocket,ws"}, nil, "transports"},
		{nil, map[string]string{"PARTYLINE_SEND_QUEUE": "many"}, "PARTYLINE_SEND_QUEUE"},
		{[]string{"--config", file}, nil, `"adress"`},
		{[]string{"--config", "/does/not/exist.json"}, nil, "exist.json"},
		{[]string{"stray"}, nil, "stray"},
		{[]string{"--webhook-url", "ftp://backend/hooks", "--webhook-secret", "s"}, nil, "webhook-url"},
		{[]string{"--webhook-url", "http://backend/hooks"}, nil, "webhook-secret"},
		{[]string{"--webhook-events", "message,user_joind"}, nil, "user_joind"},
		{[]string{"--webhook-leave-delay", "0s"}, nil, "webhook-leave-delay"},
		{[]string{"--webhook-timeout", "-1s"}, nil, "webhook-timeout"},
		{[]string{"--hook-join", "backend/join", "--webhook-secret", "s"}, nil, "hook-join"},
		{[]string{"--hook-publish", "http://backend/publish"}, nil, "webhook-secret"},
		{[]string{"--hook-connect", "http://backend/connect", "--webhook-secret", "s", "--hook-timeout", "0s"}, nil, "hook-timeout"},
	} {
		_, err := loadConfig(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("args %v env %v: error %v, want one line naming %s", tc.args, tc.env, err, tc.want)
		}
	}
}
