package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"

	"github.com/telegate/telegate/test/load"
)

func parseLoad(t *testing.T, args ...string) *loadCmd {
	t.Helper()
	app := kingpin.New("telegate", "")
	l := registerLoad(app)
	if _, err := app.Parse(append([]string{"load"}, args...)); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLoadFlags(t *testing.T) {
	// Defaults keep the gateway's paths, no settling, the text report.
	l := parseLoad(t)
	if l.cfg.Path != "" || l.cfg.Settle != 0 || l.output != "text" || l.sinkOnly || l.cfg.IDLabel != "" {
		t.Fatalf("defaults changed: path %q settle %v output %q sink-only %v id label %q", l.cfg.Path, l.cfg.Settle, l.output, l.sinkOnly, l.cfg.IDLabel)
	}
	if l = parseLoad(t, "--id-label=_id"); l.cfg.IDLabel != "_id" {
		t.Fatalf("--id-label not applied: %q", l.cfg.IDLabel)
	}
	l = parseLoad(t, "--path=/api/v1/write", "--settle=2s", "--output=json", "--sink-only", "--sink.listen-address=127.0.0.1:0")
	if l.cfg.Path != "/api/v1/write" || l.cfg.Settle != 2*time.Second || l.output != "json" || !l.sinkOnly || l.sink != "127.0.0.1:0" {
		t.Fatalf("flags not applied: %+v", l)
	}
	if err := parseLoad(t, "--sink-only").run(log.NewNopLogger()); err == nil || !strings.Contains(err.Error(), "--sink.listen-address") {
		t.Fatalf("--sink-only without an address: %v", err)
	}
}

func TestLoadSinkServesWritesAndCounters(t *testing.T) {
	if _, _, _, err := startSink("192.0.2.1:9091", log.NewNopLogger()); err == nil {
		t.Fatal("non-loopback sink address accepted")
	}
	sink, addr, stop, err := startSink("127.0.0.1:0", log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	body, err := load.EncodeRemoteWrite(load.DefaultSpec.WriteRequest(time.Now().UnixMilli()))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/write", "/api/v1/receive"} {
		resp, err := http.Post("http://"+addr+path, "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	if c := sink.Counts(); c != (load.SinkCounts{Requests: 2, Samples: 2000}) {
		t.Fatalf("counts %+v", c)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"telegate_load_sink_samples_total 2000\n", "telegate_load_sink_requests_total 2\n", "telegate_load_sink_rejected_total 0\n", "process_cpu_seconds_total "} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, text)
		}
	}
}

func TestWriteResultFormats(t *testing.T) {
	res := &load.Result{Protocol: load.ProtocolRemoteWrite, Path: "/api/v1/receive", Writes: 3, Accepted: 3, Sink: &load.SinkCounts{Requests: 3, Samples: 1500}}
	var text, js strings.Builder
	if err := writeResult(&text, res, "text"); err != nil {
		t.Fatal(err)
	}
	if err := writeResult(&js, res, "json"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "sink                3 requests, 1500 samples, 0 rejected\n") {
		t.Fatalf("text:\n%s", text.String())
	}
	if !strings.Contains(js.String(), `"accepted_writes": 3`) || !strings.Contains(js.String(), `"samples": 1500`) {
		t.Fatalf("json:\n%s", js.String())
	}
}
