package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The static checks apply the overlays' patches themselves, so that what
// they check is what kustomize renders even without kubectl: JSON 6902
// patches (a YAML list of add/replace/remove operations, with a target)
// and the subset of strategic merge the overlays use (maps merge, a null
// deletes a key, lists of named items merge by name, other lists are
// replaced, `$patch: delete` deletes the object).

type patchSpec struct {
	Path   string         `yaml:"path"`
	Patch  string         `yaml:"patch"`
	Target map[string]any `yaml:"target"`
}

// applyPatches applies dir's patches, in order, to objs.
func applyPatches(t *testing.T, dir string, patches []patchSpec, objs []object) []object {
	t.Helper()
	for _, p := range patches {
		where := dir + ": inline patch"
		data := []byte(p.Patch)
		if p.Path != "" {
			where = path.Join(dir, p.Path)
			var err error
			if data, err = fs.ReadFile(FS, where); err != nil {
				continue // reported by kustomization
			}
		}
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		var err error
		if ops, ok := doc.([]any); ok {
			objs, err = applyJSONPatch(objs, p.Target, ops)
		} else {
			objs, err = applyMergePatch(objs, p.Target, doc)
		}
		if err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
	return objs
}

// targets returns the indexes of the objects a patch applies to: its
// target (kind and name), or for a strategic merge patch without one, the
// patch's own kind and name.
func targets(objs []object, target map[string]any, patch any) ([]int, error) {
	kind, name := str(patch, "kind"), str(patch, "metadata", "name")
	for k := range target {
		if k != "kind" && k != "name" {
			return nil, fmt.Errorf("patch target key %q: only kind and name are supported by this test", k)
		}
	}
	if target != nil {
		kind, name = str(target, "kind"), str(target, "name")
	}
	var out []int
	for i, o := range objs {
		if (kind == "" || o.kind() == kind) && (name == "" || o.name() == name) {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the patch's target %s/%s matches no object", kind, name)
	}
	return out, nil
}

func applyMergePatch(objs []object, target map[string]any, patch any) ([]object, error) {
	idx, err := targets(objs, target, patch)
	if err != nil {
		return nil, err
	}
	if str(patch, "$patch") == "delete" {
		del := map[int]bool{}
		for _, i := range idx {
			del[i] = true
		}
		var out []object
		for i, o := range objs {
			if !del[i] {
				out = append(out, o)
			}
		}
		return out, nil
	}
	for _, i := range idx {
		objs[i].raw = mergeValue(objs[i].raw, patch).(map[string]any)
	}
	return objs, nil
}

func mergeValue(dst, patch any) any {
	switch p := patch.(type) {
	case map[string]any:
		d, ok := dst.(map[string]any)
		if !ok {
			d = map[string]any{}
		}
		out := map[string]any{}
		for k, v := range d {
			out[k] = v
		}
		for k, v := range p {
			if v == nil {
				delete(out, k)
				continue
			}
			out[k] = mergeValue(out[k], v)
		}
		return out
	case []any:
		d, ok := dst.([]any)
		if !ok || !named(d) || !named(p) {
			return p
		}
		out := append([]any(nil), d...)
		for _, item := range p {
			found := false
			for i, have := range out {
				if str(have, "name") == str(item, "name") {
					out[i], found = mergeValue(have, item), true
				}
			}
			if !found {
				out = append(out, item)
			}
		}
		return out
	default:
		return patch
	}
}

// named reports whether every item of l is a map with a name.
func named(l []any) bool {
	for _, v := range l {
		if str(v, "name") == "" {
			return false
		}
	}
	return len(l) > 0
}

func applyJSONPatch(objs []object, target map[string]any, ops []any) ([]object, error) {
	if target == nil {
		return nil, fmt.Errorf("a JSON 6902 patch needs a target")
	}
	idx, err := targets(objs, target, nil)
	if err != nil {
		return nil, err
	}
	for _, i := range idx {
		var doc any = objs[i].raw
		for _, op := range ops {
			if doc, err = jsonPatchOp(doc, str(op, "op"), str(op, "path"), get(op, "value")); err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", objs[i].id(), str(op, "op"), str(op, "path"), err)
			}
		}
		objs[i].raw = doc.(map[string]any)
	}
	return objs, nil
}

// jsonPatchOp applies one operation and returns the new document.
func jsonPatchOp(doc any, op, ptr string, value any) (any, error) {
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("path must start with /")
	}
	keys := strings.Split(ptr[1:], "/")
	for i, k := range keys {
		keys[i] = strings.ReplaceAll(strings.ReplaceAll(k, "~1", "/"), "~0", "~")
	}
	switch op {
	case "add", "replace", "remove":
	default:
		return nil, fmt.Errorf("operation %q is not supported by this test", op)
	}
	var apply func(node any, keys []string) (any, error)
	apply = func(node any, keys []string) (any, error) {
		k, last := keys[0], len(keys) == 1
		switch n := node.(type) {
		case map[string]any:
			child, ok := n[k]
			if !last {
				if !ok {
					return nil, fmt.Errorf("%q does not exist", k)
				}
				v, err := apply(child, keys[1:])
				n[k] = v
				return n, err
			}
			if !ok && op != "add" {
				return nil, fmt.Errorf("%q does not exist", k)
			}
			if op == "remove" {
				delete(n, k)
			} else {
				n[k] = value
			}
			return n, nil
		case []any:
			if last && op == "add" && k == "-" {
				return append(n, value), nil
			}
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i > len(n) || (i == len(n) && !(last && op == "add")) {
				return nil, fmt.Errorf("index %q out of range (%d items)", k, len(n))
			}
			if !last {
				v, err := apply(n[i], keys[1:])
				n[i] = v
				return n, err
			}
			switch op {
			case "add":
				return append(n[:i], append([]any{value}, n[i:]...)...), nil
			case "replace":
				n[i] = value
				return n, nil
			default:
				return append(n[:i], n[i+1:]...), nil
			}
		default:
			return nil, fmt.Errorf("%q: not a map or list", k)
		}
	}
	return apply(doc, keys)
}

// TestPatchApplier checks the applier on the operations the overlays use,
// against what kustomize does.
func TestPatchApplier(t *testing.T) {
	parse := func(s string) []object {
		t.Helper()
		objs, err := parseObjects("test", []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	objs := parse(`apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 1
  template:
    spec:
      containers:
      - {name: a, image: x, args: [one]}
      - {name: b, image: y}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: d}
`)
	objs, err := applyJSONPatch(objs, map[string]any{"kind": "Deployment", "name": "d"}, []any{
		map[string]any{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "two"},
		map[string]any{"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "z"},
		map[string]any{"op": "remove", "path": "/spec/replicas"},
	})
	if err != nil {
		t.Fatal(err)
	}
	objs, err = applyMergePatch(objs, nil, map[string]any{
		"kind": "Deployment", "metadata": map[string]any{"name": "d"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "b", "env": []any{map[string]any{"name": "E", "value": "1"}}},
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	objs, err = applyMergePatch(objs, nil, map[string]any{"$patch": "delete", "kind": "PodDisruptionBudget", "metadata": map[string]any{"name": "d"}})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for _, o := range objs {
		b, _ := yaml.Marshal(o.raw)
		got.Write(b)
	}
	want := `apiVersion: apps/v1
kind: Deployment
metadata:
    name: d
spec:
    template:
        spec:
            containers:
                - args:
                    - one
                    - two
                  image: x
                  name: a
                - env:
                    - name: E
                      value: "1"
                  image: z
                  name: b
`
	if got.String() != want {
		t.Errorf("patched:\n%s\nwant:\n%s", got.String(), want)
	}
	if _, err := applyJSONPatch(objs, map[string]any{"kind": "Deployment", "name": "d"}, []any{
		map[string]any{"op": "replace", "path": "/spec/nothing/here", "value": 1},
	}); err == nil {
		t.Error("replacing a missing path succeeded")
	}
	if _, err := applyMergePatch(objs, map[string]any{"kind": "Service", "name": "d"}, map[string]any{}); err == nil {
		t.Error("a patch without a matching target succeeded")
	}
}
