// Package kitslog adapts the binary's go-kit logger to log/slog, for the
// libraries telegate embeds that log with slog. One adapter, shared by the
// command and the store.
package kitslog
