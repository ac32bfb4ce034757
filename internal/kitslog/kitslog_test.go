package kitslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

func TestSlogThroughGoKit(t *testing.T) {
	var buf bytes.Buffer
	kit := level.NewFilter(log.NewLogfmtLogger(&buf), level.AllowInfo())
	l := New(kit).With("component", "web").WithGroup("tls")
	l.Info("TLS is enabled.", "http2", true, slog.Group("peer", "addr", "127.0.0.1:1"))
	l.Debug("filtered out")
	l.Error("handshake failed", "err", "bad certificate")
	got := buf.String()
	for _, want := range []string{
		`level=info msg="TLS is enabled." component=web tls.http2=true tls.peer.addr=127.0.0.1:1`,
		`level=error msg="handshake failed" component=web tls.err="bad certificate"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "filtered out") {
		t.Errorf("debug line passed the info filter:\n%s", got)
	}
}
