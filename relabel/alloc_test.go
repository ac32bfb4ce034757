package relabel

import (
	"testing"
	"time"

	"github.com/telegate/telegate/batch"
)

// Process rewrites sorted series in place: stripping, stamping in sorted
// position and validation allocate nothing per series.
func TestProcessDoesNotAllocatePerSeries(t *testing.T) {
	p := New(Options{ClusterIDLabel: "_id", DropLabels: []string{"instance", "pod", "prometheus_replica"}, MaxLabels: 64})
	var sc Scratch
	now := time.Now()
	var jobs, zones [100]string
	for i := range 100 {
		jobs[i], zones[i] = string(rune('a'+i%26))+"job", string(rune('a'+i/26))
	}
	b := &batch.Batch{}
	run := func() {
		b.Reset()
		for i := range 100 {
			b.PushLabel("__name__", "up")
			b.PushLabel("instance", "10.0.0.1:9100")
			b.PushLabel("job", jobs[i])
			b.PushLabel("namespace", "ns")
			b.PushLabel("pod", "p-1")
			b.PushLabel("zone", zones[i])
			b.PushSample(now.UnixMilli(), 1)
			b.EndSeries()
		}
		if _, err := p.Process(b, "c1", now, true, &sc); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if len(b.Series) != 100 || labelsOf(b.Series[0]) != "__name__=up,_id=c1,job=ajob,namespace=ns,zone=a" {
		t.Fatalf("got %d series, first %s", len(b.Series), labelsOf(b.Series[0]))
	}
	if n := testing.AllocsPerRun(20, run); n > 0 {
		t.Fatalf("%v allocations per 100 series, want 0", n)
	}
}

func TestStampKeepsSortedOrder(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "_id=c"},
		{"__name__=a", "__name__=a,_id=c"},
		{"__name__=a,job=j", "__name__=a,_id=c,job=j"},
		{"A=x,__name__=a", "A=x,__name__=a,_id=c"},
		{"__name__=a,_id=c,job=j", "__name__=a,_id=c,job=j"},
		{"job=j,__name__=a", "_id=c,job=j,__name__=a"}, // unsorted input: sorted later
	} {
		var ls []batch.Label
		if tc.in != "" {
			for _, kv := range splitPairs(tc.in) {
				ls = append(ls, batch.Label{Name: kv[0], Value: kv[1]})
			}
		}
		got := labelsOf(batch.Series{Labels: stamp(ls, "_id", "c")})
		if got != tc.want {
			t.Errorf("stamp(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func splitPairs(s string) [][2]string {
	var out [][2]string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			part := s[start:i]
			for j := 0; j < len(part); j++ {
				if part[j] == '=' {
					out = append(out, [2]string{part[:j], part[j+1:]})
					break
				}
			}
			start = i + 1
		}
	}
	return out
}
