package config

import (
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	config_util "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"
)

// referenceDoc is the configuration reference; its first YAML block documents
// the gateway's config file key by key (the later blocks are the tokens and
// budget-overrides files, which have their own parsers and tests).
const referenceDoc = "../docs/configuration.md"

// referenceExceptions are config keys the reference does not list one by one,
// with the reason.
var referenceExceptions = map[string]string{}

// inlineExceptions are inlined structs from other modules whose keys the
// reference documents as a comment instead of one by one.
var inlineExceptions = map[reflect.Type]string{
	reflect.TypeOf(config_util.HTTPClientConfig{}): "Prometheus HTTP client settings: a comment lists them (authn.authorizer, forward)",
}

const modulePath = "github.com/telegate/telegate"

// structKey is one yaml key of the config structs.
type structKey struct {
	typ  reflect.Type
	leaf bool // not walked further: the reference may give it any value shape
}

// structKeys walks t's yaml-tagged fields, recursing into this module's
// structs (and inlined ones); other types are leaves.
func structKeys(t *testing.T, typ reflect.Type, prefix string, out map[string]structKey) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, ok := f.Tag.Lookup("yaml")
		if !ok || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if strings.Contains(","+opts+",", ",inline,") {
			if _, ok := inlineExceptions[ft]; ok {
				continue
			}
			structKeys(t, ft, prefix, out)
			continue
		}
		if name == "" {
			t.Fatalf("%s%s: field without a yaml name", prefix, f.Name)
		}
		path := prefix + name
		own := ft.Kind() == reflect.Struct && strings.HasPrefix(ft.PkgPath(), modulePath)
		out[path] = structKey{typ: f.Type, leaf: !own}
		if own {
			structKeys(t, ft, path+".", out)
		}
	}
}

// referenceBlock returns the first ```yaml block of the reference.
func referenceBlock(t *testing.T) string {
	data, err := os.ReadFile(referenceDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "```yaml\n")
	if !ok {
		t.Fatalf("%s: no ```yaml block", referenceDoc)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("%s: unterminated ```yaml block", referenceDoc)
	}
	return block
}

// docKeys flattens the documented YAML into path -> value, stopping below
// keys the structs treat as leaves.
func docKeys(v any, prefix string, keys map[string]structKey, out map[string]any) {
	m, ok := v.(yaml.MapSlice)
	if !ok {
		return
	}
	for _, item := range m {
		path := prefix + item.Key.(string)
		out[path] = item.Value
		if k, ok := keys[path]; ok && k.leaf {
			continue
		}
		docKeys(item.Value, path+".", keys, out)
	}
}

// TestReferenceMatchesConfig keeps docs/configuration.md from drifting from
// the config structs: every key documented, nothing documented that does not
// exist, and documented scalar values equal to the defaults.
func TestReferenceMatchesConfig(t *testing.T) {
	keys := map[string]structKey{}
	structKeys(t, reflect.TypeOf(Config{}), "", keys)
	if len(keys) < 100 {
		t.Fatalf("found only %d config keys; the walk is broken", len(keys))
	}

	var doc yaml.MapSlice
	if err := yaml.Unmarshal([]byte(referenceBlock(t)), &doc); err != nil {
		t.Fatalf("%s: %v", referenceDoc, err)
	}
	documented := map[string]any{}
	docKeys(doc, "", keys, documented)

	var paths []string
	for p := range keys {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if _, ok := documented[p]; !ok && referenceExceptions[p] == "" {
			t.Errorf("%s: config key %s is not documented", referenceDoc, p)
		}
	}
	for p := range documented {
		if _, ok := keys[p]; !ok {
			t.Errorf("%s: documents %s, which is no config key", referenceDoc, p)
		}
	}

	// Documented values are the defaults: decode each documented scalar or
	// list into the field's type and compare it with Default()'s field.
	def := reflect.ValueOf(Default()).Elem()
	checked := 0
	for _, p := range paths {
		v, ok := documented[p]
		if !ok {
			continue
		}
		if _, isMap := v.(yaml.MapSlice); isMap {
			continue
		}
		want, ok := fieldByPath(def, p)
		if !ok {
			t.Errorf("%s: no field in Default()", p)
			continue
		}
		text, err := yaml.Marshal(map[string]any{"v": v})
		if err != nil {
			t.Fatal(err)
		}
		got := reflect.New(want.Type())
		holder := reflect.New(reflect.StructOf([]reflect.StructField{{
			Name: "V", Type: want.Type(), Tag: `yaml:"v"`,
		}}))
		if err := yaml.Unmarshal(text, holder.Interface()); err != nil {
			t.Errorf("%s: documented value %v does not parse as %s: %v", p, v, want.Type(), err)
			continue
		}
		got.Elem().Set(holder.Elem().Field(0))
		if !sameValue(got.Elem(), want) {
			t.Errorf("%s: documented default %v, Default() has %v", p, v, want.Interface())
		}
		checked++
	}
	if checked < 80 {
		t.Errorf("compared only %d documented defaults", checked)
	}
}

// sameValue is reflect.DeepEqual, except that empty and nil lists are equal.
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// fieldByPath finds the field a yaml key path names, through inlined structs.
func fieldByPath(v reflect.Value, path string) (reflect.Value, bool) {
	name, rest, more := strings.Cut(path, ".")
	f, ok := fieldByYAMLName(v, name)
	if !ok || !more {
		return f, ok
	}
	for f.Kind() == reflect.Pointer {
		if f.IsNil() {
			return reflect.Value{}, false
		}
		f = f.Elem()
	}
	return fieldByPath(f, rest)
}

func fieldByYAMLName(v reflect.Value, name string) (reflect.Value, bool) {
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		tag, ok := sf.Tag.Lookup("yaml")
		if !ok || !sf.IsExported() {
			continue
		}
		n, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			if f, ok := fieldByYAMLName(v.Field(i), name); ok {
				return f, true
			}
			continue
		}
		if n == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}
