package privacy

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telegate/telegate/batch"
)

func allOn(t testing.TB) *Guard {
	t.Helper()
	var a [NumDetectors]Action
	for d := range a {
		a[d] = Hash
	}
	g, err := New(Options{Actions: a, Key: []byte("k"), HostnameSuffixes: []string{"corp.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// The corpus: values that carry personal data and the detector that must
// find them, and ordinary values that must pass untouched with every
// detector on.
var positives = []struct {
	label, value string
	want         Detector
}{
	{"owner", "alice@example.com", Email},
	{"contact", "Bob.Smith+ops@mail.example.co.uk", Email},
	{"msg", "sent by carol_99@example.org today", Email},
	{"endpoint", "https://admin:hunter2@registry.example.com/v2/", URLCredentials},
	{"endpoint", "postgres://app@db:5432/x", URLCredentials},
	{"endpoint", "ftp://user:p%40ss@files.example.net", URLCredentials},
	{"node_ip", "10.0.12.7", IP},
	{"addr", "192.168.1.20:9100", IP},
	{"peer", "client 203.0.113.9 connected", IP},
	{"addr", "2001:db8::1", IP},
	{"addr", "[fe80::1ff:fe23:4567:890a]:443", IP},
	{"addr", "::ffff:10.1.2.3", IP},
	{"addr", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", IP},
	{"mac", "00:1a:2b:3c:4d:5e", MAC},
	{"mac", "00-1A-2B-3C-4D-5E", MAC},
	{"mac", "001a.2b3c.4d5e", MAC},
	{"iface", "eth0 aa:bb:cc:dd:ee:ff", MAC},
	{"host", "db1.corp.example.com", Hostname},
	{"host", "WEB-3.Corp.Example.COM:8443", Hostname},
	{"apikey", "sk_live_51HqLyjWDarjtT1zdp7dcXabcDEF12345678", Token},
	{"auth", "ghp_R2d2C3poL0ngT0kenValue9xYzAbCdEfGh", Token},
}

var negatives = []struct{ label, value string }{
	{"_id", "0d4f8e2a-9c7b-4e1f-8a3d-6b5c4d3e2f1a"},
	{"uuid", "123e4567-e89b-12d3-a456-426614174000"},
	{"version", "4.14.0"},
	{"version", "4.14.0-0.nightly-2024-01-15-123456"},
	{"version", "1.2.3.4"},
	{"kernel_version", "10.0.19041.1"},
	{"gitVersion", "v1.27.6+b49f9d1"},
	{"le", "0.005"},
	{"le", "+Inf"},
	{"quantile", "0.99"},
	{"namespace", "openshift-monitoring"},
	{"job", "kube-state-metrics"},
	{"image", "quay.io/openshift-release-dev/ocp-release@sha256:3f5a6c8d"},
	{"image", "registry.example.com/team/app:v1.2.3"},
	{"commit", "9f86d081884c7d659a2feaebc15d93a6a74e1c22"},
	{"digest", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{"time", "10:20:30"},
	{"time", "2024-01-15T10:20:30Z"},
	{"lang", "std::map"},
	{"path", "/var/lib/kubelet"},
	{"mode", "ReadWriteOnce"},
	{"reason", "CrashLoopBackOff"},
	{"host", "db1.other.example.com"},
	{"host", "corp.example.com"},
	{"host", "evilcorp.example.com.attacker.net"},
	{"ratio", "1.5"},
	{"at", "@"},
	{"handle", "@team-ops"},
	{"email", "not-an-email@localhost"},
	{"url", "https://example.com/path?q=1"},
	{"url", "https://example.com/@user"},
	{"words", "ThisIsAFairlyLongCamelCaseIdentifierName"},
	{"pod_template_hash", "7d9f8c6b5d"},
	{"cidr", "10.0.0"},
	{"octet", "256.1.1.1"},
	{"hashed", "pii:email:0123456789abcdef0123"},
	{"redacted", "pii:ip:redacted"},
}

func TestDetectorsCorpus(t *testing.T) {
	g := allOn(t)
	for _, c := range positives {
		d, ok := g.det.find(c.label, c.value)
		if !ok || d != c.want {
			t.Errorf("%s=%q: found %v %v, want %v", c.label, c.value, d, ok, c.want)
		}
	}
	for _, c := range negatives {
		if d, ok := g.det.find(c.label, c.value); ok {
			t.Errorf("%s=%q: false positive %v", c.label, c.value, d)
		}
	}
}

func series(name string, ls ...string) batch.Series {
	s := batch.Series{Labels: []batch.Label{{Name: batch.MetricName, Value: name}}, Samples: []batch.Sample{{Timestamp: 1, Value: 1}}}
	for i := 0; i+1 < len(ls); i += 2 {
		s.Labels = append(s.Labels, batch.Label{Name: ls[i], Value: ls[i+1]})
	}
	return s
}

func value(s batch.Series, name string) string {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

func TestDefaultsHashKeyed(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, err := New(Options{Actions: Defaults(), Key: []byte("deployment-key"), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	b := &batch.Batch{Series: []batch.Series{
		series("m", "owner", "alice@example.com", "version", "4.14.0"),
		series("m", "owner", "alice@example.com"),
		series("m", "owner", "bob@example.com"),
		series("m", "node", "10.0.0.1"),
		series("m", "tok", "sk_live_51HqLyjWDarjtT1zdp7dcXabcDEF12345678"),
	}}
	st := g.Apply(b)
	if st.Findings[Hash] != 4 || st.Found() != 4 || len(b.Series) != 5 {
		t.Fatalf("stats %+v, series %d", st, len(b.Series))
	}
	a0, a1, bob := value(b.Series[0], "owner"), value(b.Series[1], "owner"), value(b.Series[2], "owner")
	if !strings.HasPrefix(a0, "pii:email:") || len(a0) != len("pii:email:")+hashLen {
		t.Fatalf("hash %q", a0)
	}
	if a0 != a1 || a0 == bob {
		t.Fatalf("equal values must hash equal, others not: %q %q %q", a0, a1, bob)
	}
	if value(b.Series[0], "version") != "4.14.0" {
		t.Fatal("version changed")
	}
	if v := value(b.Series[4], "tok"); !strings.HasPrefix(v, "sk_live") {
		t.Fatalf("token detector is off by default, got %q", v)
	}
	if !strings.HasPrefix(value(b.Series[3], "node"), "pii:ip:") {
		t.Fatal("ip not hashed")
	}
	// Another key gives another hash: the hash is keyed.
	g2, _ := New(Options{Actions: Defaults(), Key: []byte("other")})
	b2 := &batch.Batch{Series: []batch.Series{series("m", "owner", "alice@example.com")}}
	g2.Apply(b2)
	if value(b2.Series[0], "owner") == a0 {
		t.Fatal("hash does not depend on the key")
	}
	// A second pass (the gateway after the client) leaves hashes alone.
	again := g.Apply(b)
	if again.Found() != 0 || value(b.Series[0], "owner") != a0 {
		t.Fatalf("hashed value found again: %+v", again)
	}
	if got := testutil.ToFloat64(g.findings.WithLabelValues("m", "email", "hash")); got != 3 {
		t.Fatalf("findings counter %v", got)
	}
}

func TestActionsPerMetricShadowAndExemplars(t *testing.T) {
	g, err := New(Options{
		Actions: Defaults(),
		Metrics: map[string]map[Detector]Action{
			"drop_me":   {Email: Drop},
			"redact_me": {IP: Redact},
			"ignore_me": {Email: Off},
		},
		Key:          []byte("k"),
		ExemptLabels: []string{"_id"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ex := series("keep", "owner", "x")
	ex.Exemplars = []batch.Exemplar{
		{Labels: []batch.Label{{Name: "trace_id", Value: "abc"}}},
		{Labels: []batch.Label{{Name: "user", Value: "eve@example.com"}}},
	}
	b := &batch.Batch{Series: []batch.Series{
		series("drop_me", "owner", "alice@example.com"),
		series("drop_me", "owner", "nobody"),
		series("redact_me", "addr", "10.1.2.3"),
		series("ignore_me", "owner", "alice@example.com"),
		series("keep", "_id", "alice@example.com"),
		ex,
	}}
	st := g.Apply(b)
	if st.DroppedSeries != 1 || st.DroppedSamples != 1 || len(b.Series) != 5 {
		t.Fatalf("drop: %+v, %d series", st, len(b.Series))
	}
	if b.Series[0].Name() != "drop_me" || value(b.Series[0], "owner") != "nobody" {
		t.Fatalf("wrong series dropped: %+v", b.Series[0])
	}
	if v := value(b.Series[1], "addr"); v != "pii:ip:redacted" {
		t.Fatalf("redact: %q", v)
	}
	if v := value(b.Series[2], "owner"); v != "alice@example.com" {
		t.Fatalf("per-metric off: %q", v)
	}
	if v := value(b.Series[3], "_id"); v != "alice@example.com" {
		t.Fatalf("exempt label inspected: %q", v)
	}
	if e := b.Series[4].Exemplars; len(e) != 2 || !strings.HasPrefix(e[1].Labels[0].Value, "pii:email:") {
		t.Fatalf("exemplar: %+v", e)
	}

	sg, _ := New(Options{Actions: Defaults(), Shadow: true, Metrics: map[string]map[Detector]Action{"drop_me": {Email: Drop}}})
	b = &batch.Batch{Series: []batch.Series{series("drop_me", "owner", "alice@example.com"), series("m", "ip", "10.0.0.1")}}
	st = sg.Apply(b)
	if st.Findings[Shadow] != 2 || len(b.Series) != 2 || value(b.Series[0], "owner") != "alice@example.com" {
		t.Fatalf("shadow changed the batch: %+v %+v", st, b.Series)
	}
}

func TestForgedOwnOutputIsInspected(t *testing.T) {
	g := allOn(t)
	for _, v := range []string{"pii:email:alice@example.com", "pii:ip:10.0.0.1", "pii:nope:0123456789abcdef0123 a@b.cc"} {
		if _, ok := g.det.find("x", v); !ok {
			t.Errorf("%q passed as the guard's own output", v)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for name, o := range map[string]Options{
		"hash without key":     {Actions: Defaults()},
		"hostname no suffixes": {Actions: [NumDetectors]Action{Hostname: Redact}},
		"bad suffix":           {Actions: [NumDetectors]Action{Hostname: Redact}, HostnameSuffixes: []string{"-bad..x"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	g, err := New(Options{})
	if err != nil || g.Enabled() {
		t.Fatalf("zero options: %v %v", err, g.Enabled())
	}
}

func TestInspect(t *testing.T) {
	g := allOn(t)
	f := g.Inspect([]batch.Label{{Name: "__name__", Value: "m"}, {Name: "a", Value: "x@example.com"}, {Name: "le", Value: "10.0.0.1"}})
	if len(f) != 1 || f[0].Detector != Email || f[0].Label != "a" || f[0].Action != Hash || f[0].Metric != "m" {
		t.Fatalf("%+v", f)
	}
}

func TestMetricLabelBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, _ := New(Options{Actions: Defaults(), Key: []byte("k"), Registerer: reg})
	for i := 0; i < maxMetricNames+50; i++ {
		b := &batch.Batch{Series: []batch.Series{series("m"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+itoa(i), "ip", "10.0.0.1")}}
		g.Apply(b)
	}
	if n := testutil.CollectAndCount(g.findings); n != maxMetricNames+1 {
		t.Fatalf("%d series in the findings counter", n)
	}
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

func FuzzDetect(f *testing.F) {
	for _, c := range positives {
		f.Add(c.label, c.value)
	}
	for _, c := range negatives {
		f.Add(c.label, c.value)
	}
	g, _ := New(Options{Actions: [NumDetectors]Action{Hash, Hash, Hash, Hash, Hash, Hash}, Key: []byte("k"), HostnameSuffixes: []string{"example.com"}})
	f.Fuzz(func(t *testing.T, _, v string) {
		b := &batch.Batch{Series: []batch.Series{series("m", "l", v)}}
		g.Apply(b)
		// Whatever was found was replaced by a value that is found no more.
		if _, ok := g.det.find("l", value(b.Series[0], "l")); ok {
			t.Fatalf("%q: output %q still matches", v, value(b.Series[0], "l"))
		}
	})
}

func TestHasSeparator(t *testing.T) {
	for _, v := range []string{"", "a", "a@", "abcdefg:", "abcdefgh.", "abcdefghijklmnop-", "-abcdefghijklmnop", "abcdefgh@ijklmnopq", "ab.cdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxy:z", "a-b-c-d-e-f-g-h-i-j-k-", "----------------------------", "\x00\x80\xff@"} {
		want := strings.ContainsAny(v, "@:.")
		if got := hasSeparator(v); got != want {
			t.Errorf("hasSeparator(%q) = %v, want %v", v, got, want)
		}
	}
}

// BenchmarkApply is the guard with every detector on over series shaped
// like a cluster's (test/load's payload: namespace, job, pod, instance,
// ...); it reports ns per series.
func BenchmarkApply(b *testing.B) {
	var all [NumDetectors]Action
	for d := range all {
		all[d] = Hash
	}
	g, err := New(Options{Actions: all, Key: []byte("k"), HostnameSuffixes: []string{"corp.example.com"},
		ExemptLabels: []string{"_id", "instance", "pod", "prometheus_replica"}})
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	bt := &batch.Batch{}
	for i := range n {
		bt.Series = append(bt.Series, series("cluster_operator_conditions", "container", "kube-apiserver", "endpoint", "https",
			"instance", "10.128.4."+itoa(i%250)+":8443", "job", "kube-apiserver", "namespace", "openshift-kube-apiserver",
			"pod", "kube-apiserver-7d9f8c6b5d-x2k4q", "prometheus", "openshift-monitoring/k8s", "reason", "r"+itoa(i%20), "service", "kube-apiserver"))
	}
	b.ResetTimer()
	for b.Loop() {
		g.Apply(bt)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
}

// hasSeparator reads words at the start, the end and between: every
// length and every position of a separator must be seen.
func TestHasSeparatorEveryPosition(t *testing.T) {
	for n := 1; n <= 48; n++ {
		base := []byte(strings.Repeat("a", n))
		if hasSeparator(string(base)) {
			t.Fatalf("len %d: false positive", n)
		}
		for i := range n {
			for _, c := range []byte("@:.") {
				v := append([]byte(nil), base...)
				v[i] = c
				if !hasSeparator(string(v)) {
					t.Fatalf("len %d: %q at %d missed", n, c, i)
				}
			}
		}
	}
}

// TestSeparatorOrDashes: the one-pass test agrees with its definition
// (a '@', ':' or '.' anywhere, or five dashes) at every length it is used
// for, with the bytes anywhere (the overlapping last word included) and
// bytes one bit away from '-' (',', '.', '/', 0xad).
func TestSeparatorOrDashes(t *testing.T) {
	alphabet := []byte{'-', '-', '-', 'a', ',', '/', 0xad, 0x00, 0xff, 0x2c, 0x6d, '@', ':', '.'}
	r := rand.New(rand.NewPCG(7, 7))
	for n := 8; n <= 70; n++ {
		for k := range 600 {
			b := make([]byte, n)
			for i := range b {
				// Half the values without separators, so the dash count decides.
				b[i] = alphabet[r.IntN(len(alphabet)-3*(k%2))]
			}
			v := string(b)
			want := strings.ContainsAny(v, "@:.") || strings.Count(v, "-") >= 5
			if got := separatorOrDashes(v); got != want {
				t.Fatalf("separatorOrDashes(%q) = %v, want %v", v, got, want)
			}
		}
	}
}

// TestExemptByNameOnly: Apply skips exactly the exempt labels: names that
// share an exempt name's first byte (or prefix) are still inspected, in
// a series whose metric name would be a finding itself.
func TestExemptByNameOnly(t *testing.T) {
	g, err := New(Options{Actions: Defaults(), Key: []byte("k"), ExemptLabels: []string{"_id", "instance", "pod"}})
	if err != nil {
		t.Fatal(err)
	}
	const email = "alice@example.com"
	s := series("alice@example.com", "_id", email, "_idx", email, "instance", email, "instances", email,
		"le", email, "level", email, "pod", email, "p", email, "quantile", email, "q", email)
	b := &batch.Batch{Series: []batch.Series{s}}
	g.Apply(b)
	for _, l := range b.Series[0].Labels {
		exempt := map[string]bool{"__name__": true, "_id": true, "instance": true, "le": true, "pod": true, "quantile": true}[l.Name]
		if hashed := strings.HasPrefix(l.Value, "pii:email:"); hashed == exempt {
			t.Errorf("label %s: value %q (exempt %v)", l.Name, l.Value, exempt)
		}
	}
}
