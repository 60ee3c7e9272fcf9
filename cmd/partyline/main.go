// Command partyline runs the partyline real-time messaging server.
//
//	partyline [serve] [flags]   serve WebSocket clients (the default)
//	partyline bench [flags]     drive a running server and measure it
//	partyline version           print the version
//
// main only calls run, which tests drive directly.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at link time with -ldflags "-X main.version=…"; otherwise
// it comes from the module's build information.
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, errorLine(err))
		os.Exit(1)
	}
}

// errorLine is err as the program reports it, named once: the library's
// errors name the package already.
func errorLine(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "partyline: ") {
		return msg
	}
	return "partyline: " + msg
}

// run executes the command named by args[0], serve by default, until ctx is
// cancelled.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	command := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		command, args = args[0], args[1:]
	}
	switch command {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "bench":
		return bench(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "partyline", currentVersion())
		return nil
	case "help":
		return serve(ctx, []string{"--help"}, stdout, stderr)
	default:
		return fmt.Errorf("unknown command %q (want serve, bench or version)", command)
	}
}

func currentVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
