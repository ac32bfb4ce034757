// Package relabel owns everything that happens to a series' labels and
// timestamps after the allowlist let it through: stripping the labels that
// must never leave a cluster, Prometheus relabel_configs, stamping the
// cluster ID taken from the credentials, label validation, collision
// handling (two series that become identical after stripping) and the
// timestamp policy. It is protocol-agnostic: it works on a batch.Batch.
package relabel
