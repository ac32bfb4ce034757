package bytesize

import (
	"testing"

	yamlv2 "go.yaml.in/yaml/v2"
	yamlv3 "gopkg.in/yaml.v3"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Size{
		"0": 0, "1024": 1024, "7B": 7, "200KB": 200000, "200KiB": 204800, "4MiB": 4 << 20,
		"4MB": 4000000, "1GiB": 1 << 30, "2GB": 2000000000, " 3 KiB ": 3072,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "MiB", "1TB", "10000000000GiB", "1 k"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q): no error", in)
		}
	}
	for in, want := range map[Size]string{0: "0B", 1000: "1000B", 1024: "1KiB", 1536: "1536B", 4 << 20: "4MiB", 3 << 30: "3GiB"} {
		if got := in.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(in), got, want)
		}
	}
}

// Both YAML libraries in the module read a Size through UnmarshalText,
// with the same meaning.
func TestYAML(t *testing.T) {
	var v2, v3 struct {
		S Size `yaml:"s"`
	}
	if err := yamlv2.Unmarshal([]byte("s: 200KB\n"), &v2); err != nil || v2.S != 200000 {
		t.Fatalf("yaml v2: %d %v", v2.S, err)
	}
	if err := yamlv3.Unmarshal([]byte("s: 200KB\n"), &v3); err != nil || v3.S != 200000 {
		t.Fatalf("yaml v3: %d %v", v3.S, err)
	}
	if err := yamlv3.Unmarshal([]byte("s: 12\n"), &v3); err != nil || v3.S != 12 {
		t.Fatalf("yaml v3 plain number: %d %v", v3.S, err)
	}
	if err := yamlv2.Unmarshal([]byte("s: lots\n"), &v2); err == nil {
		t.Fatal("yaml v2 took an invalid size")
	}
	out, err := yamlv2.Marshal(struct{ S Size }{4 << 20})
	if err != nil || string(out) != "s: 4MiB\n" {
		t.Fatalf("marshal: %q %v", out, err)
	}
}
