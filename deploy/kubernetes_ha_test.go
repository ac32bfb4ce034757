package deploy

import (
	"os"
	"path"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestGatewayHighAvailability checks what running several replicas under
// faults needs (issue 19): each replica owns its spool on a volume that
// follows it (a StatefulSet's volume claim, mounted where the production
// config spools, never an emptyDir lost with the pod), a PodDisruptionBudget
// and an autoscaler on CPU for the same pods, and replicas kept apart by
// anti-affinity.
func TestGatewayHighAvailability(t *testing.T) {
	for _, b := range []string{"gateway", "overlays/production"} {
		t.Run(b, func(t *testing.T) {
			objs, _ := kustomization(t, path.Join(k8sDir, b))
			var sts *object
			have := map[string]object{}
			for i, o := range objs {
				have[o.id()] = o
				if o.id() == "StatefulSet/"+gatewayName {
					sts = &objs[i]
				}
			}
			if sts == nil {
				t.Fatalf("no StatefulSet/%s: the gateway replicas must each own a spool volume", gatewayName)
			}
			spec := dict(sts.raw, "spec")
			if svc := str(spec, "serviceName"); svc == "" || have["Service/"+svc].raw == nil || str(have["Service/"+svc].raw, "spec", "clusterIP") != "None" {
				t.Errorf("serviceName %q must name a headless Service of the build", svc)
			}
			claims := map[string]bool{}
			for _, c := range list(spec, "volumeClaimTemplates") {
				claims[str(c, "metadata", "name")] = true
				if get(c, "spec", "resources", "requests", "storage") == nil {
					t.Errorf("volume claim %s requests no storage", str(c, "metadata", "name"))
				}
			}
			if str(spec, "persistentVolumeClaimRetentionPolicy", "whenScaled") != "Retain" {
				t.Error("a scale-down must keep the removed replica's spool volume (persistentVolumeClaimRetentionPolicy.whenScaled: Retain)")
			}
			ps := dict(spec, "template", "spec")
			for _, v := range list(ps, "volumes") {
				if str(v, "name") == "spool" {
					t.Errorf("the spool is a pod volume (%v), lost with the pod; it must be a volume claim template", v)
				}
			}
			spoolDir := productionSpoolDir(t)
			mounted := false
			for _, c := range list(ps, "containers") {
				for _, m := range list(c, "volumeMounts") {
					if claims[str(m, "name")] && strings.HasPrefix(spoolDir+"/", strings.TrimRight(str(m, "mountPath"), "/")+"/") {
						mounted = true
					}
				}
			}
			if !mounted {
				t.Errorf("the spool directory %s of the production config is not on a volume claim (%v)", spoolDir, claims)
			}
			terms := list(ps, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution")
			terms = append(terms, list(ps, "affinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution")...)
			anti := false
			for _, term := range terms {
				tk := str(term, "podAffinityTerm", "topologyKey") + str(term, "topologyKey")
				sel := dict(term, "podAffinityTerm", "labelSelector", "matchLabels")
				if sel == nil {
					sel = dict(term, "labelSelector", "matchLabels")
				}
				if tk == "kubernetes.io/hostname" && len(sel) > 0 && subset(sel, dict(spec, "template", "metadata", "labels")) {
					anti = true
				}
			}
			if !anti {
				t.Error("no pod anti-affinity keeping gateway replicas on different nodes")
			}
			pdb := have["PodDisruptionBudget/"+gatewayName]
			if pdb.raw == nil || !subset(dict(pdb.raw, "spec", "selector", "matchLabels"), dict(spec, "template", "metadata", "labels")) {
				t.Error("no PodDisruptionBudget selecting the gateway pods")
			}
			hpa := have["HorizontalPodAutoscaler/"+gatewayName]
			if str(hpa.raw, "spec", "scaleTargetRef", "kind") != "StatefulSet" || str(hpa.raw, "spec", "scaleTargetRef", "name") != gatewayName {
				t.Errorf("the HPA scales %s/%s, not the gateway StatefulSet", str(hpa.raw, "spec", "scaleTargetRef", "kind"), str(hpa.raw, "spec", "scaleTargetRef", "name"))
			}
			cpu := false
			for _, m := range list(hpa.raw, "spec", "metrics") {
				cpu = cpu || str(m, "resource", "name") == "cpu"
			}
			if !cpu {
				t.Error("the HPA does not scale on CPU")
			}
			if b == "overlays/production" {
				if minR, _ := get(hpa.raw, "spec", "minReplicas").(int); minR < 3 {
					t.Errorf("production runs at least 3 replicas (one down for a disruption, one crashing), HPA min %d", minR)
				}
			}
		})
	}
}

// productionSpoolDir is forward.spool.bucket.config.directory of the
// production config, which must be a FILESYSTEM bucket here.
func productionSpoolDir(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(path.Join(k8sDir, "overlays/production/gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Forward struct {
			Spool struct {
				Bucket struct {
					Type   string `yaml:"type"`
					Config struct {
						Directory string `yaml:"directory"`
					} `yaml:"config"`
				} `yaml:"bucket"`
			} `yaml:"spool"`
		} `yaml:"forward"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	b := c.Forward.Spool.Bucket
	if b.Type != "FILESYSTEM" || !path.IsAbs(b.Config.Directory) {
		t.Fatalf("production spool bucket %s at %q: want FILESYSTEM at an absolute path on the replica's volume", b.Type, b.Config.Directory)
	}
	return path.Clean(b.Config.Directory)
}
