// Package cli is the client's command line: the flags of `telegate client`
// and of the lean telegate-client binary (the same flags, registered on a
// kingpin subcommand or on the application itself), their overlay on
// --config.file, and the run and inspect actions wiring package client to
// its HTTP listener, signals and reloads; --once, --dry-run, --print-id
// and --rotate-id run one thing and exit. It imports nothing of the
// gateway, so the client binary stays small.
package cli
