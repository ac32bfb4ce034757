// Package cmdutil holds what every telegate binary's commands share: the
// logger of --log.level and --log.format, the signal actor of a run group
// and the exporter-toolkit flags of a listener. It depends on no telegate
// package, so the lean client binary (cmd/telegate-client) and the full
// one (cmd/telegate) both use it without pulling in the gateway.
package cmdutil
