package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/exporter-toolkit/web"
	yamlv2 "go.yaml.in/yaml/v2"
	"gopkg.in/yaml.v3"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/client"
	"github.com/telegate/telegate/config"
)

const k8sDir = "kubernetes"

// builds are the kustomizations users apply.
var builds = []string{"gateway", "client", "overlays/production", "overlays/dev"}

// external are the objects the bases reference but do not contain: the
// operator creates them (kubernetes/README.md says how).
var external = map[string]bool{
	"Secret/telegate-gateway-credentials": true,
	"Secret/telegate-gateway-tls":         true,
	"Secret/telegate-client":              true,
	"ConfigMap/telegate-client-cluster":   true,
}

// object is a parsed Kubernetes object.
type object struct {
	file string
	raw  map[string]any
}

func (o object) kind() string { return str(o.raw, "kind") }
func (o object) name() string { return str(o.raw, "metadata", "name") }
func (o object) id() string   { return o.kind() + "/" + o.name() }

// get walks maps and lists ("0" indexes a list).
func get(v any, keys ...string) any {
	for _, k := range keys {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i >= len(m) {
				return nil
			}
			v = m[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, keys ...string) string { s, _ := get(v, keys...).(string); return s }
func list(v any, keys ...string) []any { l, _ := get(v, keys...).([]any); return l }
func dict(v any, keys ...string) map[string]any {
	m, _ := get(v, keys...).(map[string]any)
	return m
}

func parseObjects(name string, data []byte) ([]object, error) {
	var out []object
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if m == nil {
			continue
		}
		o := object{file: name, raw: m}
		if str(m, "apiVersion") == "" || o.kind() == "" || o.name() == "" {
			return nil, fmt.Errorf("%s: an object without apiVersion, kind or metadata.name: %v", name, m)
		}
		out = append(out, o)
	}
}

// kustomization reads dir's kustomization.yaml, checks every file it
// names exists and is valid, and returns the objects of its resources
// (recursively, with the patches applied) and the names its generators
// create.
func kustomization(t *testing.T, dir string) (objs []object, generated map[string]bool) {
	t.Helper()
	data, err := fs.ReadFile(FS, path.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var k struct {
		APIVersion         string         `yaml:"apiVersion"`
		Kind               string         `yaml:"kind"`
		Namespace          string         `yaml:"namespace"`
		Labels             []any          `yaml:"labels"`
		Resources          []string       `yaml:"resources"`
		Images             []any          `yaml:"images"`
		GeneratorOptions   map[string]any `yaml:"generatorOptions"`
		ConfigMapGenerator []generator    `yaml:"configMapGenerator"`
		SecretGenerator    []generator    `yaml:"secretGenerator"`
		Patches            []patchSpec    `yaml:"patches"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	if k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		t.Errorf("%s/kustomization.yaml: kind %q apiVersion %q", dir, k.Kind, k.APIVersion)
	}
	generated = map[string]bool{}
	for _, r := range k.Resources {
		p := path.Clean(path.Join(dir, r))
		if st, err := fs.Stat(FS, p); err != nil {
			t.Errorf("%s: resource %s does not exist", dir, r)
			continue
		} else if st.IsDir() {
			sub, gen := kustomization(t, p)
			objs = append(objs, sub...)
			for g := range gen {
				generated[g] = true
			}
			continue
		}
		data, _ := fs.ReadFile(FS, p)
		o, err := parseObjects(p, data)
		if err != nil {
			t.Error(err)
		}
		objs = append(objs, o...)
	}
	for kind, gens := range map[string][]generator{"ConfigMap": k.ConfigMapGenerator, "Secret": k.SecretGenerator} {
		for _, g := range gens {
			generated[kind+"/"+g.Name] = true
			for _, f := range g.Files {
				if _, f, ok := strings.Cut(f, "="); ok || f != "" {
					checkConfigFile(t, path.Join(dir, f))
				}
			}
		}
	}
	for _, p := range k.Patches {
		if p.Path == "" && p.Patch == "" {
			t.Errorf("%s: a patch without path or patch", dir)
		}
		if p.Path != "" {
			if _, err := fs.Stat(FS, path.Join(dir, p.Path)); err != nil {
				t.Errorf("%s: patch %s does not exist", dir, p.Path)
			}
		}
	}
	return applyPatches(t, dir, k.Patches, objs), generated
}

type generator struct {
	Name     string   `yaml:"name"`
	Behavior string   `yaml:"behavior"`
	Files    []string `yaml:"files"`
	Literals []string `yaml:"literals"`
}

// checkConfigFile validates a generated file with the parser of what
// reads it: the gateway config, the allowlist, web configs, the client
// config, a Prometheus config.
func checkConfigFile(t *testing.T, p string) {
	t.Helper()
	data, err := fs.ReadFile(FS, p)
	if err != nil {
		t.Errorf("generator file %s: %v", p, err)
		return
	}
	switch base := path.Base(p); {
	case base == "gateway.yaml":
		allow, _ := fs.ReadFile(FS, path.Join(k8sDir, "gateway", "allowlist.yaml"))
		if _, err := config.Parse(data, p, fstest.MapFS{"allowlist.yaml": {Data: allow}}, ""); err != nil {
			t.Errorf("gateway config %s: %v", p, err)
		}
	case base == "allowlist.yaml":
		if _, err := allowlist.Parse(data, p); err != nil {
			t.Errorf("allowlist %s: %v", p, err)
		}
	case strings.HasPrefix(base, "web") && strings.HasSuffix(base, ".yml"):
		var c web.Config
		if err := yamlv2.UnmarshalStrict(data, &c); err != nil {
			t.Errorf("web config %s: %v", p, err)
		}
	case base == "client.yaml":
		c, err := client.ParseConfig(data)
		if err == nil {
			c.ID = "placeholder" // from the --id flag
			c.SetDefaults()
			err = c.Validate(true)
		}
		if err != nil {
			t.Errorf("client config %s: %v", p, err)
		}
	case base == "prometheus.yml":
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil || m["scrape_configs"] == nil {
			t.Errorf("prometheus config %s: %v", p, err)
		}
	default:
		t.Errorf("generator file %s: no check for this kind of file", p)
	}
}

// checkObjects checks required fields and that references resolve among
// the objects, the generated names and the external list.
func checkObjects(t *testing.T, build string, objs []object, generated map[string]bool, rendered bool) {
	t.Helper()
	have := map[string]object{}
	for _, o := range objs {
		have[o.id()] = o
	}
	// Rendered, generated names carry a hash suffix; the generator
	// labels say which generator.
	resolves := func(id string) bool {
		if _, ok := have[id]; ok || generated[id] || external[id] {
			return true
		}
		return false
	}
	var pods []map[string]any
	for _, o := range objs {
		switch o.kind() {
		case "Deployment", "StatefulSet":
			spec := dict(o.raw, "spec")
			sel := dict(spec, "selector", "matchLabels")
			podLabels := dict(spec, "template", "metadata", "labels")
			if len(sel) == 0 || !subset(sel, podLabels) {
				t.Errorf("%s: %s: selector %v does not match the pod labels %v", build, o.id(), sel, podLabels)
			}
			pods = append(pods, podLabels)
			ps := dict(spec, "template", "spec")
			if sa := str(ps, "serviceAccountName"); sa != "" && !resolves("ServiceAccount/"+sa) {
				t.Errorf("%s: %s: ServiceAccount %s missing", build, o.id(), sa)
			}
			mounts := map[string]bool{}
			for _, c := range list(ps, "containers") {
				name := str(c, "name")
				if str(c, "image") == "" {
					t.Errorf("%s: %s/%s: no image", build, o.id(), name)
				}
				if get(c, "resources", "requests", "cpu") == nil || get(c, "resources", "requests", "memory") == nil || get(c, "resources", "limits", "memory") == nil {
					t.Errorf("%s: %s/%s: resources need cpu and memory requests and a memory limit", build, o.id(), name)
				}
				if get(c, "readinessProbe") == nil || get(c, "livenessProbe") == nil {
					t.Errorf("%s: %s/%s: readiness and liveness probes required", build, o.id(), name)
				}
				if strings.HasPrefix(o.name(), "telegate-") {
					if p := str(c, "readinessProbe", "httpGet", "path"); p != "/-/ready" {
						t.Errorf("%s: %s: readiness probe on %q, want /-/ready", build, o.id(), p)
					}
					if p := str(c, "livenessProbe", "httpGet", "path"); p != "/-/healthy" {
						t.Errorf("%s: %s: liveness probe on %q, want /-/healthy", build, o.id(), p)
					}
					if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(ps, "securityContext", "runAsNonRoot") != true {
						t.Errorf("%s: %s: must run as non-root on a read-only root filesystem", build, o.id())
					}
				}
				for _, m := range list(c, "volumeMounts") {
					mounts[str(m, "name")] = true
				}
				for _, e := range list(c, "env") {
					if cm := str(e, "valueFrom", "configMapKeyRef", "name"); cm != "" && !resolves("ConfigMap/"+trimHash(cm, generated, "ConfigMap")) {
						t.Errorf("%s: %s: env from ConfigMap %s missing", build, o.id(), cm)
					}
				}
				// Files the arguments name live on a mounted volume.
				for _, a := range list(c, "args") {
					s, _ := a.(string)
					if _, f, ok := strings.Cut(s, "file="); ok && strings.HasPrefix(f, "/") && !mountedPath(c, f) {
						t.Errorf("%s: %s: %s is not on a mounted volume", build, o.id(), s)
					}
				}
			}
			for _, v := range list(ps, "volumes") {
				vn := str(v, "name")
				if !mounts[vn] {
					t.Errorf("%s: %s: volume %s is not mounted", build, o.id(), vn)
				}
				if cm := str(v, "configMap", "name"); cm != "" && !resolves("ConfigMap/"+trimHash(cm, generated, "ConfigMap")) {
					t.Errorf("%s: %s: ConfigMap %s missing", build, o.id(), cm)
				}
				if s := str(v, "secret", "secretName"); s != "" && !resolves("Secret/"+trimHash(s, generated, "Secret")) {
					t.Errorf("%s: %s: Secret %s missing", build, o.id(), s)
				}
			}
		case "HorizontalPodAutoscaler":
			ref := str(o.raw, "spec", "scaleTargetRef", "kind") + "/" + str(o.raw, "spec", "scaleTargetRef", "name")
			if _, ok := have[ref]; !ok {
				t.Errorf("%s: %s scales %s, which is not there", build, o.id(), ref)
			}
			minR, _ := get(o.raw, "spec", "minReplicas").(int)
			maxR, _ := get(o.raw, "spec", "maxReplicas").(int)
			if minR < 1 || maxR < minR || len(list(o.raw, "spec", "metrics")) == 0 {
				t.Errorf("%s: %s: replicas %d-%d, metrics %v", build, o.id(), minR, maxR, list(o.raw, "spec", "metrics"))
			}
			if d, ok := have[ref]; ok && get(d.raw, "spec", "replicas") != nil {
				t.Errorf("%s: %s sets spec.replicas, which fights the HPA", build, ref)
			}
		case "ClusterRoleBinding", "RoleBinding":
			if r := "ClusterRole/" + str(o.raw, "roleRef", "name"); str(o.raw, "roleRef", "kind") == "ClusterRole" && !resolves(r) {
				t.Errorf("%s: %s binds missing %s", build, o.id(), r)
			}
			for _, s := range list(o.raw, "subjects") {
				if str(s, "kind") == "ServiceAccount" && !resolves("ServiceAccount/"+str(s, "name")) {
					t.Errorf("%s: %s binds missing ServiceAccount %s", build, o.id(), str(s, "name"))
				}
			}
		}
	}
	// Selectors of Services and PodDisruptionBudgets select some pods.
	for _, o := range objs {
		var sel map[string]any
		switch o.kind() {
		case "Service":
			sel = dict(o.raw, "spec", "selector")
		case "PodDisruptionBudget":
			sel = dict(o.raw, "spec", "selector", "matchLabels")
		default:
			continue
		}
		found := false
		for _, p := range pods {
			found = found || (len(sel) > 0 && subset(sel, p))
		}
		if !found {
			t.Errorf("%s: %s selects no pod (%v)", build, o.id(), sel)
		}
	}
	if rendered {
		for _, o := range objs {
			if ns := str(o.raw, "metadata", "namespace"); o.kind() != "Namespace" && !strings.HasPrefix(o.kind(), "Cluster") && ns == "" && build != "gateway" {
				t.Errorf("%s: %s has no namespace", build, o.id())
			}
		}
	}
}

// trimHash maps a rendered generator name (name-<hash>) back to the
// generator's name.
func trimHash(name string, generated map[string]bool, kind string) string {
	if i := strings.LastIndex(name, "-"); i > 0 && generated[kind+"/"+name[:i]] {
		return name[:i]
	}
	return name
}

func mountedPath(container any, file string) bool {
	for _, m := range list(container, "volumeMounts") {
		if mp := str(m, "mountPath"); mp != "" && strings.HasPrefix(file, strings.TrimSuffix(mp, "/")+"/") {
			return true
		}
	}
	return false
}

func subset(sel, labels map[string]any) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKustomizationsStatic parses every kustomization and every manifest,
// checks each file they name exists and is valid, and checks the objects
// of each build (no kustomize needed).
func TestKustomizationsStatic(t *testing.T) {
	for _, b := range builds {
		t.Run(b, func(t *testing.T) {
			objs, gen := kustomization(t, path.Join(k8sDir, b))
			if len(objs) == 0 {
				t.Fatal("no objects")
			}
			checkObjects(t, b, objs, gen, false)
			checkGatewayExposure(t, b, objs)
			checkScrapeTargets(t, b, objs)
		})
	}
	// Every YAML file under kubernetes/ is used by some kustomization.
	used := map[string]bool{}
	fs.WalkDir(FS, k8sDir, func(p string, d fs.DirEntry, err error) error {
		if d.Name() == "kustomization.yaml" {
			data, _ := fs.ReadFile(FS, p)
			dir := path.Dir(p)
			for _, line := range strings.Split(string(data), "\n") {
				f := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))
				f = strings.TrimPrefix(f, "path: ")
				used[path.Clean(path.Join(dir, f))] = true
			}
		}
		return nil
	})
	fs.WalkDir(FS, k8sDir, func(p string, d fs.DirEntry, err error) error {
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) && d.Name() != "kustomization.yaml" && !used[p] {
			t.Errorf("%s is not referenced by any kustomization", p)
		}
		return nil
	})
	// The external objects are documented.
	readme, _ := fs.ReadFile(FS, path.Join(k8sDir, "README.md"))
	ops, _ := os.ReadFile("../docs/operations.md")
	for id := range external {
		name := strings.SplitN(id, "/", 2)[1]
		if !bytes.Contains(readme, []byte(name)) || !bytes.Contains(ops, []byte(name)) {
			t.Errorf("%s is expected to exist but kubernetes/README.md or docs/operations.md does not say how", id)
		}
	}
}

// TestKustomizationsRender renders every build with `kubectl kustomize`
// (offline) when kubectl is installed, and checks the rendered objects:
// generator names with hashes are wired, namespaces are set, the dev
// overlay needs nothing external.
func TestKustomizationsRender(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed: only the static checks ran")
	}
	for _, b := range builds {
		t.Run(b, func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", path.Join(k8sDir, b)).Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					t.Fatalf("kubectl kustomize %s: %v\n%s", b, err, ee.Stderr)
				}
				t.Fatal(err)
			}
			objs, err := parseObjects(b, out)
			if err != nil {
				t.Fatal(err)
			}
			_, gen := kustomization(t, path.Join(k8sDir, b))
			checkObjects(t, b, objs, gen, true)
			checkGatewayExposure(t, b, objs)
			checkScrapeTargets(t, b, objs)
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.kind())
			}
			sort.Strings(kinds)
			all := strings.Join(kinds, ",")
			for _, want := range map[string][]string{
				"gateway":             {"ConfigMap", "StatefulSet", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"},
				"client":              {"ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service", "ServiceAccount"},
				"overlays/production": {"HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget"},
				"overlays/dev":        {"Namespace", "Secret", "Deployment", "StatefulSet"},
			}[b] {
				if !strings.Contains(all, want) {
					t.Errorf("%s renders no %s (%s)", b, want, all)
				}
			}
			if b == "overlays/dev" {
				// Self-contained: every Secret and ConfigMap it mounts is in it.
				have := map[string]bool{}
				for _, o := range objs {
					have[o.id()] = true
				}
				for _, o := range objs {
					for _, v := range list(o.raw, "spec", "template", "spec", "volumes") {
						if s := str(v, "secret", "secretName"); s != "" && !have["Secret/"+s] {
							t.Errorf("dev overlay: %s needs the external Secret %s", o.id(), s)
						}
						if c := str(v, "configMap", "name"); c != "" && !have["ConfigMap/"+c] {
							t.Errorf("dev overlay: %s needs the external ConfigMap %s", o.id(), c)
						}
					}
				}
				if strings.Contains(all, "PodDisruptionBudget") {
					t.Errorf("dev overlay keeps the PodDisruptionBudget of its single replica")
				}
			}
		})
	}
}
