package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a size in bytes. It reads from YAML (v2 and v3, through
// encoding.TextUnmarshaler) and flags as Parse does and writes back with
// String.
type Size int64

var units = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// Parse parses a size such as "4MiB", "512KB" or "1024".
func Parse(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			mult = u.mult
			num = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: want a non-negative integer with an optional unit (B, KB, MB, GB, KiB, MiB, GiB)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(n * mult), nil
}

// String formats b with the largest binary unit that divides it.
func (b Size) String() string {
	for _, u := range [...]int{2, 1, 0} { // GiB, MiB, KiB
		if m := units[u]; b != 0 && int64(b)%m.mult == 0 {
			return strconv.FormatInt(int64(b)/m.mult, 10) + m.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *Size) UnmarshalText(text []byte) error {
	v, err := Parse(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (b Size) MarshalText() ([]byte, error) { return []byte(b.String()), nil }
