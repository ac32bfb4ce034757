package privacy

import (
	"testing"
	"time"
)

func TestOptOuts(t *testing.T) {
	list, err := ParseOptOuts([]byte("installations:\n- c1\n- {id: c2, reason: ticket 1234, since: 2026-11-30}\n- c1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[1].Reason != "ticket 1234" {
		t.Fatalf("%+v", list)
	}
	var o OptOuts
	if _, ok := o.Contains("c1"); ok {
		t.Fatal("empty set contains c1")
	}
	o.Set(list, time.Unix(1, 0))
	if e, ok := o.Contains("c2"); !ok || e.Since != "2026-11-30" {
		t.Fatalf("c2: %+v %v", e, ok)
	}
	if _, ok := o.Contains("c3"); ok {
		t.Fatal("c3 opted out")
	}
	_, h1, _ := o.List()
	o.Set(list[:1], time.Now())
	if _, ok := o.Contains("c2"); ok {
		t.Fatal("reload did not replace the set")
	}
	if _, h2, _ := o.List(); h1 == h2 {
		t.Fatal("hash unchanged")
	}
	var nilSet *OptOuts
	if _, ok := nilSet.Contains("c1"); ok {
		t.Fatal("nil set")
	}
	for _, bad := range []string{"installations: [\"\"]\n", "installations:\n- {id: c1, bogus: 1}\n", "other: 1\n"} {
		if _, err := ParseOptOuts([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
