package cmdutil

import (
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/run"
)

// SIGHUP calls reload and the group keeps running; SIGTERM ends it.
func TestSignalActor(t *testing.T) {
	var g run.Group
	reloads := make(chan struct{}, 1)
	AddSignalActor(&g, log.NewNopLogger(), func() { reloads <- struct{}{} })
	block := make(chan struct{})
	g.Add(func() error { <-block; return nil }, func(error) { close(block) })
	done := make(chan error, 1)
	go func() { done <- g.Run() }()
	// signal.Notify ran in AddSignalActor, and its channel holds one
	// signal until the actor reads it.
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	select {
	case <-reloads:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGHUP did not reload")
	}
	select {
	case err := <-done:
		t.Fatalf("the group ended on SIGHUP: %v", err)
	default:
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not end the group")
	}
}

func TestWebFlags(t *testing.T) {
	f := WebFlags("127.0.0.1:9", "web.yml")
	if len(*f.WebListenAddresses) != 1 || (*f.WebListenAddresses)[0] != "127.0.0.1:9" || *f.WebSystemdSocket || *f.WebConfigFile != "web.yml" {
		t.Errorf("%+v", f)
	}
}

// NewLogger filters below its level and writes logfmt or JSON to stderr.
func TestNewLogger(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	level.Info(NewLogger("warn", "logfmt")).Log("msg", "hidden")
	level.Warn(NewLogger("warn", "logfmt")).Log("msg", "shown")
	level.Info(NewLogger("info", "json")).Log("msg", "as json")
	os.Stderr = stderr
	w.Close()
	b, _ := io.ReadAll(r)
	out := string(b)
	if strings.Contains(out, "hidden") || !strings.Contains(out, "level=warn") || !strings.Contains(out, "msg=shown") || !strings.Contains(out, `"msg":"as json"`) {
		t.Errorf("got %q", out)
	}
}

// DebugEnabled tells a NewLogger logger's level; any other logger may
// write debug lines.
func TestDebugEnabled(t *testing.T) {
	for lvl, want := range map[string]bool{"debug": true, "info": false, "warn": false, "error": false} {
		if got := DebugEnabled(NewLogger(lvl, "logfmt")); got != want {
			t.Errorf("level %s: DebugEnabled %v, want %v", lvl, got, want)
		}
	}
	if !DebugEnabled(log.NewNopLogger()) {
		t.Error("another logger: DebugEnabled false, want true")
	}
}
