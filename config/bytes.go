package config

import "github.com/telegate/telegate/bytesize"

// Bytes is a size in bytes: a plain integer or with a unit, B, KB, MB, GB
// (powers of 1000) or KiB, MiB, GiB (powers of 1024); see bytesize.
type Bytes = bytesize.Size

// ParseBytes parses a size such as "4MiB", "512KB" or "1024".
func ParseBytes(s string) (Bytes, error) { return bytesize.Parse(s) }
