package deploy

import (
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The gateway's internal listener (/metrics, health, /debug/limits with
// per-cluster detail; /-/reload and pprof when enabled) must not be
// reachable by every pod in the cluster: it has its own Service, the
// public Service does not carry it, a NetworkPolicy admits only the
// monitoring namespace to it, and only the dev overlay turns on
// --web.enable-lifecycle or --web.enable-pprof.

const (
	gatewayName         = "telegate-gateway"
	internalServiceName = "telegate-gateway-internal"
)

// debugFlagsAllowed are the builds that may pass --web.enable-lifecycle
// or --web.enable-pprof to the gateway.
var debugFlagsAllowed = map[string]bool{"overlays/dev": true}

// reporter is the part of testing.T the checks use (TestGatewayExposure
// records what they report).
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// containerPort is a named port of the gateway container.
type containerPort struct {
	name   string
	number int
}

// matches reports whether a Service targetPort or NetworkPolicy port (a
// name or a number) designates p.
func (p containerPort) matches(v any) bool {
	switch v := v.(type) {
	case string:
		return v == p.name || v == strconv.Itoa(p.number)
	case int:
		return v == p.number
	}
	return false
}

// checkGatewayExposure runs the checks above on a build's objects (with
// the patches applied); builds without the gateway pass.
func checkGatewayExposure(t reporter, build string, objs []object) {
	t.Helper()
	var (
		podLabels map[string]any
		api       containerPort
		internal  containerPort
	)
	for _, o := range objs {
		if o.id() != "StatefulSet/"+gatewayName {
			continue
		}
		podLabels = dict(o.raw, "spec", "template", "metadata", "labels")
		for _, c := range list(o.raw, "spec", "template", "spec", "containers") {
			for _, p := range list(c, "ports") {
				n, _ := get(p, "containerPort").(int)
				switch str(p, "name") {
				case "api":
					api = containerPort{"api", n}
				case "internal":
					internal = containerPort{"internal", n}
				}
			}
			checkDebugFlags(t, build, o, c)
			checkMemoryLimit(t, build, o, c)
		}
	}
	if podLabels == nil {
		return
	}
	if api.number == 0 || internal.number == 0 || api.number == internal.number {
		t.Errorf("%s: the gateway container needs distinct ports named api and internal (%v, %v)", build, api, internal)
		return
	}

	// Services: the public one carries only the API; the internal port is
	// on its own in-cluster Service.
	internalServices := 0
	for _, o := range objs {
		if o.kind() != "Service" || !subset(dict(o.raw, "spec", "selector"), podLabels) {
			continue
		}
		var targets []containerPort
		for _, sp := range list(o.raw, "spec", "ports") {
			tp := get(sp, "targetPort")
			if tp == nil {
				tp = get(sp, "port")
			}
			for _, p := range []containerPort{api, internal} {
				if p.matches(tp) {
					targets = append(targets, p)
				}
			}
		}
		for _, p := range targets {
			if p != internal {
				continue
			}
			if o.name() != internalServiceName {
				t.Errorf("%s: %s exposes the internal port %d; only %s may", build, o.id(), internal.number, internalServiceName)
			}
			if typ := str(o.raw, "spec", "type"); typ != "" && typ != "ClusterIP" {
				t.Errorf("%s: %s is of type %s: the internal port must stay inside the cluster", build, o.id(), typ)
			}
			internalServices++
		}
		if o.name() == gatewayName && (len(targets) != 1 || targets[0] != api) {
			t.Errorf("%s: the public Service %s must expose the API port only, exposes %v", build, gatewayName, targets)
		}
	}
	if internalServices == 0 {
		t.Errorf("%s: no Service %s exposes the internal port (Prometheus scrapes through it)", build, internalServiceName)
	}

	// NetworkPolicies selecting the gateway pods: together they must
	// admit the API and the internal port, the latter only from selected
	// namespaces or pods.
	policies, apiAllowed, internalAllowed := 0, false, false
	for _, o := range objs {
		if o.kind() != "NetworkPolicy" {
			continue
		}
		sel := dict(o.raw, "spec", "podSelector")
		if get(sel, "matchExpressions") != nil {
			t.Errorf("%s: %s: podSelector.matchExpressions is not evaluated by this test", build, o.id())
			continue
		}
		if !subset(dict(sel, "matchLabels"), podLabels) {
			continue
		}
		types := list(o.raw, "spec", "policyTypes")
		ingress := len(types) == 0 // absent: Ingress is implied
		for _, pt := range types {
			ingress = ingress || pt == "Ingress"
		}
		if !ingress {
			continue
		}
		policies++
		for i, rule := range list(o.raw, "spec", "ingress") {
			if ruleCovers(rule, api) {
				apiAllowed = true
			}
			if !ruleCovers(rule, internal) {
				continue
			}
			internalAllowed = true
			if why := openPeers(list(rule, "from")); why != "" {
				t.Errorf("%s: %s: ingress rule %d admits %s to the internal port %d; admit only the monitoring namespace", build, o.id(), i, why, internal.number)
			}
		}
	}
	switch {
	case policies == 0:
		t.Errorf("%s: no NetworkPolicy selects the gateway pods %v: every pod in the cluster reaches the internal listener", build, podLabels)
	case !apiAllowed:
		t.Errorf("%s: the NetworkPolicies admit nobody to the API port %d", build, api.number)
	case !internalAllowed:
		t.Errorf("%s: the NetworkPolicies admit nobody to the internal port %d: Prometheus cannot scrape", build, internal.number)
	}
}

// ruleCovers reports whether an ingress rule applies to port p (a rule
// without ports applies to all).
func ruleCovers(rule any, p containerPort) bool {
	ports := list(rule, "ports")
	if len(ports) == 0 {
		return true
	}
	for _, np := range ports {
		port := get(np, "port")
		if port == nil || p.matches(port) {
			return true
		}
		if lo, ok := port.(int); ok {
			if hi, ok := get(np, "endPort").(int); ok && lo <= p.number && p.number <= hi {
				return true
			}
		}
	}
	return false
}

// openPeers says why a rule's sources are not restricted, or "".
func openPeers(from []any) string {
	if len(from) == 0 {
		return "every source (no from)"
	}
	for _, peer := range from {
		if cidr := str(peer, "ipBlock", "cidr"); cidr != "" {
			if p, err := netip.ParsePrefix(cidr); err != nil || p.Bits() == 0 {
				return "every address (ipBlock " + cidr + ")"
			}
		}
		if ns, ok := get(peer, "namespaceSelector").(map[string]any); ok && len(dict(ns, "matchLabels")) == 0 && len(list(ns, "matchExpressions")) == 0 {
			return "every namespace (empty namespaceSelector)"
		}
		if m, ok := peer.(map[string]any); !ok || len(m) == 0 {
			return "an empty peer"
		}
	}
	return ""
}

// checkDebugFlags: --web.enable-lifecycle and --web.enable-pprof only in
// the builds of debugFlagsAllowed.
func checkDebugFlags(t reporter, build string, o object, c any) {
	t.Helper()
	if debugFlagsAllowed[build] {
		return
	}
	for _, a := range list(c, "args") {
		s, _ := a.(string)
		for _, flag := range []string{"--web.enable-lifecycle", "--web.enable-pprof"} {
			if v, ok := strings.CutPrefix(s, flag); ok && (v == "" || v == "=true") {
				t.Errorf("%s: %s passes %s: POST /-/reload and pprof stay off outside the dev overlay", build, o.id(), s)
			}
		}
	}
}

// checkMemoryLimit: GOMEMLIMIT is set to 80-95% of the container's memory
// limit, so the Go GC works harder near the limit instead of letting the
// heap double past it.
func checkMemoryLimit(t reporter, build string, o object, c any) {
	t.Helper()
	limit, err := quantityBytes(str(c, "resources", "limits", "memory"))
	if err != nil {
		t.Errorf("%s: %s: limits.memory: %v", build, o.id(), err)
		return
	}
	var soft string
	for _, e := range list(c, "env") {
		if str(e, "name") == "GOMEMLIMIT" {
			soft = str(e, "value")
		}
	}
	if soft == "" {
		t.Errorf("%s: %s: no GOMEMLIMIT (about 90%% of limits.memory)", build, o.id())
		return
	}
	b, err := goMemLimitBytes(soft)
	if err != nil {
		t.Errorf("%s: %s: GOMEMLIMIT %q: %v", build, o.id(), soft, err)
		return
	}
	if ratio := float64(b) / float64(limit); ratio < 0.8 || ratio > 0.95 {
		t.Errorf("%s: %s: GOMEMLIMIT %s is %.0f%% of limits.memory %s, want 80-95%%", build, o.id(), soft, 100*ratio, str(c, "resources", "limits", "memory"))
	}
}

var (
	quantityRE   = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$`)
	goMemLimitRE = regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB|TiB)?$`)
	unitBytes    = map[string]float64{
		"": 1, "B": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
		"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	}
)

// quantityBytes parses the Kubernetes memory quantities the manifests use.
func quantityBytes(s string) (int64, error) {
	m := quantityRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a quantity this test reads", s)
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return int64(f * unitBytes[m[2]]), nil
}

// goMemLimitBytes parses GOMEMLIMIT (the runtime's syntax).
func goMemLimitBytes(s string) (int64, error) {
	m := goMemLimitRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("not a GOMEMLIMIT value (an integer with B, KiB, MiB, GiB or TiB)")
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n * int64(unitBytes[m[2]]), nil
}

// checkScrapeTargets: the static targets of a build's Prometheus config
// (the dev overlay's prometheus.yml) name a Service of the build and one
// of its ports.
func checkScrapeTargets(t *testing.T, build string, objs []object) {
	t.Helper()
	data, err := fs.ReadFile(FS, path.Join(k8sDir, build, "prometheus.yml"))
	if err != nil {
		return
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s/prometheus.yml: %v", build, err)
	}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("%s: job %s: target %q: %v", build, sc.JobName, target, err)
					continue
				}
				if host == "localhost" {
					continue
				}
				found := false
				for _, o := range objs {
					if o.id() != "Service/"+host {
						continue
					}
					for _, sp := range list(o.raw, "spec", "ports") {
						n, _ := get(sp, "port").(int)
						found = found || strconv.Itoa(n) == port
					}
				}
				if !found {
					t.Errorf("%s: job %s scrapes %s, but no Service %s has port %s", build, sc.JobName, target, host, port)
				}
			}
		}
	}
}

// recorder collects what a check reports.
type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestGatewayExposure: each way of reopening the internal listener, run
// through the production overlay, is reported (and the overlay as it is
// passes).
func TestGatewayExposure(t *testing.T) {
	const build = "overlays/production"
	op := func(kind, op, path string, value any) func([]object) []object {
		return func(objs []object) []object {
			for i := range objs {
				if objs[i].id() == kind {
					v, err := jsonPatchOp(objs[i].raw, op, path, value)
					if err != nil {
						t.Fatalf("%s %s %s: %v", kind, op, path, err)
					}
					objs[i].raw = v.(map[string]any)
					return objs
				}
			}
			t.Fatalf("no %s", kind)
			return nil
		}
	}
	const (
		deploy = "StatefulSet/" + gatewayName
		public = "Service/" + gatewayName
		intern = "Service/" + internalServiceName
		policy = "NetworkPolicy/" + gatewayName
	)
	for _, tc := range []struct {
		name   string
		mutate func([]object) []object
		want   string // "" = no error
	}{
		{"as is", func(o []object) []object { return o }, ""},
		{"pprof in production", op(deploy, "add", "/spec/template/spec/containers/0/args/-", "--web.enable-pprof"), "passes --web.enable-pprof"},
		{"lifecycle in production", op(deploy, "add", "/spec/template/spec/containers/0/args/-", "--web.enable-lifecycle=true"), "passes --web.enable-lifecycle"},
		{"lifecycle explicitly off", op(deploy, "add", "/spec/template/spec/containers/0/args/-", "--web.enable-lifecycle=false"), ""},
		{"internal port on the public Service", op(public, "add", "/spec/ports/-", map[string]any{"name": "internal", "port": 9004, "targetPort": "internal"}), "exposes the internal port 9004"},
		{"internal port by number on the public Service", op(public, "add", "/spec/ports/-", map[string]any{"name": "metrics", "port": 9004}), "exposes the internal port 9004"},
		{"no internal Service", op(intern, "replace", "/spec/ports/0/targetPort", "api"), "no Service telegate-gateway-internal"},
		{"internal Service as LoadBalancer", op(intern, "add", "/spec/type", "LoadBalancer"), "must stay inside the cluster"},
		{"no NetworkPolicy", func(o []object) []object {
			o, err := applyMergePatch(o, nil, map[string]any{"$patch": "delete", "kind": "NetworkPolicy", "metadata": map[string]any{"name": gatewayName}})
			if err != nil {
				t.Fatal(err)
			}
			return o
		}, "no NetworkPolicy selects the gateway pods"},
		{"policy selects other pods", op(policy, "replace", "/spec/podSelector/matchLabels", map[string]any{"app": "other"}), "no NetworkPolicy selects the gateway pods"},
		{"egress-only policy", op(policy, "replace", "/spec/policyTypes", []any{"Egress"}), "no NetworkPolicy selects the gateway pods"},
		{"internal rule from every namespace", op(policy, "replace", "/spec/ingress/1/from/0/namespaceSelector", map[string]any{}), "every namespace"},
		{"internal rule without from", op(policy, "remove", "/spec/ingress/1/from", nil), "every source"},
		{"internal rule from 0.0.0.0/0", op(policy, "add", "/spec/ingress/1/from/-", map[string]any{"ipBlock": map[string]any{"cidr": "0.0.0.0/0"}}), "every address"},
		{"node network admitted", op(policy, "add", "/spec/ingress/1/from/-", map[string]any{"ipBlock": map[string]any{"cidr": "10.0.0.0/16"}}), ""},
		{"public rule on all ports", op(policy, "remove", "/spec/ingress/0/ports", nil), "every source"},
		{"public rule on a port range", op(policy, "replace", "/spec/ingress/0/ports/0", map[string]any{"port": 9000, "endPort": 9010}), "every source"},
		{"API not admitted", op(policy, "remove", "/spec/ingress/0", nil), "admit nobody to the API port"},
		{"GOMEMLIMIT missing", op(deploy, "remove", "/spec/template/spec/containers/0/env", nil), "no GOMEMLIMIT"},
		{"GOMEMLIMIT above the limit", op(deploy, "replace", "/spec/template/spec/containers/0/env/0/value", "2GiB"), "want 80-95%"},
		{"limit raised, GOMEMLIMIT not", op(deploy, "replace", "/spec/template/spec/containers/0/resources/limits/memory", "2Gi"), "want 80-95%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, _ := kustomization(t, path.Join(k8sDir, build))
			var r recorder
			checkGatewayExposure(&r, build, tc.mutate(objs))
			got := strings.Join(r.errs, "\n")
			if tc.want == "" && got != "" {
				t.Errorf("reported:\n%s", got)
			}
			if tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("want a report containing %q, got:\n%s", tc.want, got)
			}
		})
	}
}
