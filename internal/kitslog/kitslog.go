package kitslog

import (
	"context"
	"log/slog"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// kitHandler is a slog.Handler that writes through a go-kit logger, so
// libraries that log with slog (the exporter-toolkit's web server, the
// TSDB, the query engine) share the binary's format (--log.format) and
// level filter (--log.level).
type kitHandler struct {
	logger log.Logger
	attrs  []any  // key-value pairs from WithAttrs, already prefixed
	group  string // "a.b." prefix from WithGroup
}

// New returns a *slog.Logger writing through l.
func New(l log.Logger) *slog.Logger { return slog.New(&kitHandler{logger: l}) }

// Enabled accepts every level: the go-kit level filter decides.
func (h *kitHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *kitHandler) Handle(_ context.Context, r slog.Record) error {
	kv := make([]any, 0, 2+len(h.attrs)+2*r.NumAttrs())
	kv = append(kv, "msg", r.Message)
	kv = append(kv, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		kv = appendAttr(kv, h.group, a)
		return true
	})
	var l log.Logger
	switch {
	case r.Level >= slog.LevelError:
		l = level.Error(h.logger)
	case r.Level >= slog.LevelWarn:
		l = level.Warn(h.logger)
	case r.Level >= slog.LevelInfo:
		l = level.Info(h.logger)
	default:
		l = level.Debug(h.logger)
	}
	return l.Log(kv...)
}

func (h *kitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := &kitHandler{logger: h.logger, group: h.group, attrs: append([]any(nil), h.attrs...)}
	for _, a := range attrs {
		n.attrs = appendAttr(n.attrs, h.group, a)
	}
	return n
}

func (h *kitHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &kitHandler{logger: h.logger, attrs: h.attrs, group: h.group + name + "."}
}

// appendAttr flattens a (possibly grouped) attribute into key-value pairs.
func appendAttr(kv []any, prefix string, a slog.Attr) []any {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return kv
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			kv = appendAttr(kv, p, g)
		}
		return kv
	}
	return append(kv, prefix+a.Key, a.Value.Any())
}
