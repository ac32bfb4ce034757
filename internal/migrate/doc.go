// Package migrate translates an OpenShift telemeter-server command line
// into a telegate configuration: `telegate migrate telemeter-server
// --out=DIR -- <telemeter-server flags>`.
//
// Translate parses telemeter-server's own flag set (the flags of
// cmd/telemeter-server, with their defaults and pflag's syntax: --name=v,
// --name v, repeatable list flags, comma-split where telemeter splits) and
// returns the files to write:
//
//   - gateway.yaml: the gateway configuration, every key commented with
//     the flag it came from. It keeps telemeter-server's behaviour where
//     telegate's defaults differ: listen addresses, --elide-label as the
//     exact drop_labels, --ratelimit, server-side /upload timestamps, the
//     THANOS-TENANT header, no spool, the same --shared-key with
//     authn.jwt.telemeter_compat on (accept and issue) so that no cluster
//     re-authorizes at the cut-over or on a rollback.
//   - allowlist.yaml: one entry per --whitelist rule and --whitelist-file
//     line, each with an empty "owners: ()" line, which
//     `telegate allowlist lint` reports (missing-owners) until a team is
//     named.
//   - web-config.yaml / web-internal-config.yaml for --tls-crt/--tls-key
//     and --internal-tls-crt/--internal-tls-key (exporter-toolkit web
//     configuration, passed with --web.config.file and
//     --web.internal-config.file); tokens.yaml when telemeter-server ran
//     without --authorize (telegate never runs without authentication);
//     oidc-client-secret for --client-secret.
//
// Result.Untranslated lists every flag with no exact equivalent and why
// (memcached, tenant key, tracing, the approximations of --required-label
// and the body limits). The written gateway.yaml loads with
// config.LoadFile as is. Translate reads the files the flags name
// (--whitelist-file, --shared-key, resolved against Options.WorkDir) and,
// with --oidc-issuer, fetches the issuer's discovery document unless
// Options.OIDCTokenURL is given.
//
// docs/migrating-from-telemeter.md has the flag table and the cut-over.
package migrate
