// Package bytesize is the one way telegate reads and writes sizes in
// configuration files and flags: a plain number of bytes, or a number with
// a unit, B, KB, MB, GB (powers of 1000, as SI says) or KiB, MiB, GiB
// (powers of 1024). The gateway's YAML, the client's YAML and both
// binaries' flags share it, so "200KB" means the same everywhere.
package bytesize
