package relabel

import (
	"errors"
	"testing"
	"time"

	"github.com/telegate/telegate/batch"
)

// Labels that could pass for the cluster ID label are stripped with
// drop_labels: another case of its name, or "exported_" (any case, any
// number of times) before its name in any case. The real label is stamped
// as always, and names that merely resemble it stay.
func TestProcessStripsClusterIDLookalikes(t *testing.T) {
	o := defaultOpts()
	o.MaxLabels, o.MaxNameLength = 64, 64
	p := New(o)
	b := mk([]string{
		"__name__", "up",
		"_ID", "c2", "_Id", "c2", "_iD", "c2",
		"exported__id", "c2", "exported__ID", "c2", "EXPORTED__id", "c2", "Exported__Id", "c2",
		"exported_exported__id", "c2", "exported_EXPORTED_exported__iD", "c2",
		// Not look-alikes:
		"_idx", "k", "_i", "k", "exported_id", "k", "exported__idx", "k", "exported_", "k",
		"exported_job", "k", "export__id", "k", "exported_x_id", "k", "e", "k", "job", "k",
	})
	if _, err := p.Process(b, "c1", time.Now(), false, &Scratch{}); err != nil {
		t.Fatal(err)
	}
	want := "__name__=up,_i=k,_id=c1,_idx=k,e=k,export__id=k,exported_=k,exported__idx=k,exported_id=k,exported_job=k,exported_x_id=k,job=k"
	if got := labelsOf(b.Series[0]); got != want {
		t.Fatalf("labels\n%s\nwant\n%s", got, want)
	}
}

// The real label is kept and stamped; CheckIdentity still refuses a
// series whose real label claims another cluster, look-alike or not, and
// a look-alike alone is stripped rather than refused.
func TestLookalikesAndCheckIdentity(t *testing.T) {
	p := New(defaultOpts())
	b := mk(
		[]string{"__name__", "up", "_ID", "c1", "_id", "other"},
		[]string{"__name__", "up", "_ID", "other", "exported__id", "other"},
		[]string{"__name__", "up", "_id", "c1", "exported__id", "other"},
	)
	var ie *InvalidError
	if err := p.CheckIdentity(&b.Series[0], "c1"); !errors.As(err, &ie) {
		t.Fatalf("real _id claiming another cluster next to a look-alike: got %v", err)
	}
	for i := 1; i < 3; i++ {
		if err := p.CheckIdentity(&b.Series[i], "c1"); err != nil {
			t.Fatalf("series %d: %v", i, err)
		}
	}
	b.Series = b.Series[1:]
	if _, err := p.Process(b, "c1", time.Now(), false, &Scratch{}); err != nil {
		t.Fatal(err)
	}
	// Both series are __name__=up,_id=c1 once the look-alikes are gone.
	if len(b.Series) != 1 || labelsOf(b.Series[0]) != "__name__=up,_id=c1" {
		t.Fatalf("got %d series, first %s", len(b.Series), labelsOf(b.Series[0]))
	}
}

// Look-alikes follow the configured cluster ID label, whatever it is.
func TestLookalikesOfACustomClusterIDLabel(t *testing.T) {
	o := defaultOpts()
	o.ClusterIDLabel = "cluster"
	p := New(o)
	for name, want := range map[string]bool{
		"cluster": false, "Cluster": true, "CLUSTER": true, "exported_cluster": true,
		"exported_exported_Cluster": true, "EXPORTED_cluster": true, "_id": false, "_ID": false,
		"exported__id": false, "clusters": false, "exported_clusters": false, "exported_": false,
		"xcluster": false, "exported_exported_": false, "exportedcluster": false,
	} {
		if got := p.lookalike(name); got != want {
			t.Errorf("lookalike(%q) = %v, want %v", name, got, want)
		}
	}
	// A label named like the prefix itself: the real label must still be kept.
	o.ClusterIDLabel = "exported_id"
	p = New(o)
	for name, want := range map[string]bool{
		"exported_id": false, "Exported_Id": true, "exported_exported_id": true, "id": false, "exported_": false,
	} {
		if got := p.lookalike(name); got != want {
			t.Errorf("cluster_id_label exported_id: lookalike(%q) = %v, want %v", name, got, want)
		}
	}
	b := mk([]string{"__name__", "up", "Cluster", "c2", "exported_cluster", "c2", "cluster", "c1", "zone", "z"})
	if _, err := New(defaultOptsWith("cluster")).Process(b, "c1", time.Now(), false, &Scratch{}); err != nil {
		t.Fatal(err)
	}
	if got := labelsOf(b.Series[0]); got != "__name__=up,cluster=c1,zone=z" {
		t.Fatalf("labels %s", got)
	}
}

func defaultOptsWith(clusterIDLabel string) Options {
	o := defaultOpts()
	o.ClusterIDLabel = clusterIDLabel
	return o
}

// TestStripPlainTable: the first-byte shortcut keeps exactly the labels
// the full test (dropped or a look-alike) keeps, for short and long
// DropLabels lists (linear scan and map) and names of every first byte.
func TestStripPlainTable(t *testing.T) {
	long := []string{"a1", "b2", "c3", "d4", "e5", "f6", "g7", "h8", "i9", "Pod"}
	for _, drop := range [][]string{nil, {"instance", "pod", "prometheus_replica"}, long, {""}} {
		for _, id := range []string{"_id", "cluster"} {
			p := New(Options{ClusterIDLabel: id, DropLabels: drop})
			for c := 0; c < 256; c++ {
				for _, rest := range []string{"", "nstance", "od", "_ID", "xported__id", "1"} {
					name := string([]byte{byte(c)}) + rest
					want := !(p.dropped(name) || p.lookalike(name))
					out, _, _ := p.strip([]batch.Label{{Name: name, Value: "v"}}, "v")
					if got := len(out) == 1; got != want {
						t.Fatalf("drop %q, id %q: strip kept %q = %v, want %v", drop, id, name, got, want)
					}
				}
			}
		}
	}
}
