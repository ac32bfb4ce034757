package store

import (
	"context"
	"log/slog"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// slogFor adapts a go-kit logger to the *slog.Logger the TSDB and the
// PromQL engine take. Level filtering stays with the go-kit logger.
func slogFor(l log.Logger) *slog.Logger { return slog.New(&kitHandler{logger: l}) }

type kitHandler struct {
	logger log.Logger
	attrs  []any
	group  string
}

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

func appendAttr(kv []any, group string, a slog.Attr) []any {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return kv
	}
	key := a.Key
	if group != "" {
		key = group + "." + key
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, ga := range a.Value.Group() {
			kv = appendAttr(kv, key, ga)
		}
		return kv
	}
	return append(kv, key, a.Value.Any())
}

func (h *kitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &kitHandler{logger: h.logger, group: h.group, attrs: append([]any(nil), h.attrs...)}
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.group, a)
	}
	return n
}

func (h *kitHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	g := name
	if h.group != "" {
		g = h.group + "." + name
	}
	return &kitHandler{logger: h.logger, attrs: h.attrs, group: g}
}
