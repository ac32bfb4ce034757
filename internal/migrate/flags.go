package migrate

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// flagKind is how telemeter-server's flag library (spf13/pflag) reads a
// flag's value.
type flagKind int

const (
	kindString flagKind = iota
	kindSlice           // StringSlice: repeatable, each value split on commas (CSV)
	kindArray           // StringArray: repeatable, each value taken whole
	kindBool
	kindInt
	kindDuration
	kindFloat
)

// serverFlags is telemeter-server's flag set (cmd/telemeter-server/main.go
// at github.com/openshift/telemeter 22ba1701) with its defaults.
var serverFlags = map[string]struct {
	kind flagKind
	def  string
}{
	"listen":                             {kindString, "0.0.0.0:9003"},
	"listen-internal":                    {kindString, "localhost:9004"},
	"tls-key":                            {kindString, ""},
	"tls-crt":                            {kindString, ""},
	"internal-tls-key":                   {kindString, ""},
	"internal-tls-crt":                   {kindString, ""},
	"label":                              {kindSlice, ""},
	"partition-label":                    {kindString, "_id"},
	"shared-key":                         {kindString, ""},
	"token-expire-seconds":               {kindInt, "86400"},
	"authorize":                          {kindString, ""},
	"oidc-issuer":                        {kindString, ""},
	"client-secret":                      {kindString, ""},
	"client-id":                          {kindString, ""},
	"oidc-audience":                      {kindString, ""},
	"tenant-key":                         {kindString, ""},
	"memcached":                          {kindSlice, ""},
	"memcached-expire":                   {kindInt, "86400"},
	"memcached-interval":                 {kindInt, "10"},
	"tenant-id":                          {kindString, "FB870BF3-9F3A-44FF-9BF7-D7A047A52F43"},
	"ratelimit":                          {kindDuration, "4m30s"},
	"forward-url":                        {kindString, ""},
	"verbose":                            {kindBool, "false"},
	"required-label":                     {kindSlice, ""},
	"whitelist":                          {kindArray, ""},
	"whitelist-file":                     {kindString, ""},
	"elide-label":                        {kindArray, ""},
	"limit-bytes":                        {kindInt, "512000"},
	"limit-receive-bytes":                {kindInt, "131072"},
	"log-level":                          {kindString, ""},
	"internal.tracing.service-name":      {kindString, "telemeter-server"},
	"internal.tracing.endpoint":          {kindString, ""},
	"internal.tracing.sampling-fraction": {kindFloat, "0.1"},
	"internal.tracing.endpoint-type":     {kindString, "agent"},
}

// shorthands are the one-letter forms.
var shorthands = map[string]string{"v": "verbose"}

// flagSet is a parsed telemeter-server command line.
type flagSet struct {
	values map[string][]string // as given, in order; slices already split
	order  []string            // flag names in the order first given
}

// set reports whether the flag was given.
func (f *flagSet) set(name string) bool { _, ok := f.values[name]; return ok }

// str returns the last value given, or the default.
func (f *flagSet) str(name string) string {
	if v := f.values[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return serverFlags[name].def
}

// list returns every value given (slices split on commas).
func (f *flagSet) list(name string) []string { return f.values[name] }

func (f *flagSet) int(name string) int64 {
	n, _ := strconv.ParseInt(f.str(name), 10, 64) // checked by parseFlags
	return n
}

func (f *flagSet) duration(name string) time.Duration {
	d, _ := time.ParseDuration(f.str(name)) // checked by parseFlags
	return d
}

func (f *flagSet) bool(name string) bool {
	b, _ := strconv.ParseBool(f.str(name))
	return b
}

// parseFlags reads args the way telemeter-server does: --name=value,
// --name value, -v, --verbose[=bool]; a flag it does not know, a bad
// value or a positional argument is an error, as it would be for
// telemeter-server.
func parseFlags(args []string) (*flagSet, error) {
	fs := &flagSet{values: make(map[string][]string)}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var name, value string
		hasValue := false
		switch {
		case a == "--":
			if i+1 < len(args) {
				return nil, fmt.Errorf("unexpected argument %q: telemeter-server takes no arguments", args[i+1])
			}
			return fs, nil
		case strings.HasPrefix(a, "--"):
			name, value, hasValue = strings.Cut(a[2:], "=")
		case strings.HasPrefix(a, "-") && len(a) > 1:
			short, v, has := strings.Cut(a[1:], "=")
			long, ok := shorthands[short]
			if !ok {
				return nil, fmt.Errorf("unknown shorthand flag %q in %s", short, a)
			}
			name, value, hasValue = long, v, has
		default:
			return nil, fmt.Errorf("unexpected argument %q: telemeter-server takes no arguments", a)
		}
		spec, ok := serverFlags[name]
		if !ok {
			return nil, fmt.Errorf("unknown flag --%s (not a telemeter-server flag)", name)
		}
		if !hasValue {
			if spec.kind == kindBool {
				value = "true"
			} else {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("flag needs an argument: --%s", name)
				}
				i++
				value = args[i]
			}
		}
		if _, seen := fs.values[name]; !seen {
			fs.order = append(fs.order, name)
		}
		switch spec.kind {
		case kindSlice:
			vs, err := csv.NewReader(strings.NewReader(value)).Read()
			if err != nil && value != "" {
				return nil, fmt.Errorf("--%s %q: %w", name, value, err)
			}
			fs.values[name] = append(fs.values[name], vs...)
			continue
		case kindBool:
			if _, err := strconv.ParseBool(value); err != nil {
				return nil, fmt.Errorf("--%s: %q is not a boolean", name, value)
			}
		case kindInt:
			if _, err := strconv.ParseInt(value, 10, 64); err != nil {
				return nil, fmt.Errorf("--%s: %q is not an integer", name, value)
			}
		case kindDuration:
			if _, err := time.ParseDuration(value); err != nil {
				return nil, fmt.Errorf("--%s: %q is not a duration", name, value)
			}
		case kindFloat:
			if _, err := strconv.ParseFloat(value, 64); err != nil {
				return nil, fmt.Errorf("--%s: %q is not a number", name, value)
			}
		}
		fs.values[name] = append(fs.values[name], value)
	}
	return fs, nil
}

// keyValues parses key=value flag values (--label, --required-label) the
// way telemeter-server does: split at the first "=".
func keyValues(flag string, values []string) ([][2]string, error) {
	var out [][2]string
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			return nil, fmt.Errorf("--%s must be of the form key=value: %s", flag, v)
		}
		out = append(out, [2]string{k, val})
	}
	return out, nil
}
