// Package config owns the gateway's YAML schema: defaults, strict parsing
// (unknown keys are errors that name the key and line), validation, and
// resolving the files the config points at (tokens, allowlist, keys)
// relative to the config file or to the embedded example set.
package config
