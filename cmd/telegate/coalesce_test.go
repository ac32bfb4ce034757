package main

import (
	"testing"
	"testing/fstest"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/forward"
)

// forward.coalesce puts a Coalescer under the forwarder for remote write
// 1.0 only (seen by its metrics).
func TestCoalesceWired(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  bool
	}{
		{"", true},
		{"  coalesce: false\n", false},
		{"  protobuf_message: " + forward.MessageV2 + "\n", false},
	} {
		c, err := config.Parse([]byte("forward:\n  url: http://127.0.0.1:1/api/v1/receive\n  spool: {enabled: false}\n"+tc.extra), "gw.yaml", fstest.MapFS{}, "")
		if err != nil {
			t.Fatal(err)
		}
		snd, err := forward.New(c.Forward.Sender, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		if _, _, err := openSpool(c, snd, log.NewNopLogger(), reg); err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, mf := range mfs {
			if mf.GetName() == "telegate_forward_coalesce_requests_total" {
				got = true
			}
		}
		if got != tc.want {
			t.Errorf("%q: coalescer wired %v, want %v", tc.extra, got, tc.want)
		}
	}
}
