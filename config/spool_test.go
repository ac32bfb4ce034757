package config

import (
	"strings"
	"testing"
	"time"

	"github.com/telegate/telegate/bucket"
	"github.com/telegate/telegate/forward"
)

const spoolBase = "authn:\n  tokens_file: t.yaml\nforward:\n  url: http://127.0.0.1:1/api/v1/receive\n"

func TestSpoolDefaults(t *testing.T) {
	c, err := Parse([]byte(spoolBase), "x.yaml", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	sp := c.Forward.Spool
	if !sp.Enabled || sp.MaxBytes != 1<<30 || time.Duration(sp.MaxSampleAge) != 2*time.Hour || time.Duration(sp.DeadLetterRetention) != 7*24*time.Hour {
		t.Fatalf("defaults %+v", sp)
	}
	if sp.Bucket.Type != "FILESYSTEM" || sp.Bucket.Config["directory"] != bucket.DefaultDirectory {
		t.Fatalf("default bucket %+v", sp.Bucket)
	}
	if c.Forward.MaxRequestBytes != forward.DefaultMaxRequestBytes {
		t.Fatalf("forward.max_request_bytes default %v", c.Forward.MaxRequestBytes)
	}
}

func TestSpoolSection(t *testing.T) {
	c, err := Parse([]byte(spoolBase+`  max_request_bytes: 1MiB
  spool:
    bucket:
      type: FILESYSTEM
      config:
        directory: /var/lib/telegate/spool
      prefix: gw-0
    max_bytes: 10GiB
    max_sample_age: 1h
    dead_letter_retention: 36h
    send_deadline: 3s
    replay:
      concurrency: 8
      min_backoff: 2s
      max_backoff: 30s
`), "x.yaml", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	sp := c.Forward.Spool
	if sp.Bucket.Config["directory"] != "/var/lib/telegate/spool" || len(sp.Bucket.Config) != 1 || sp.Bucket.Prefix != "gw-0" {
		t.Fatalf("bucket %+v (a given bucket must replace the default whole)", sp.Bucket)
	}
	if sp.MaxBytes != 10<<30 || time.Duration(sp.SendDeadline) != 3*time.Second || time.Duration(sp.DeadLetterRetention) != 36*time.Hour || sp.Replay.Concurrency != 8 ||
		time.Duration(sp.Replay.Timeout) != forward.DefaultReplayTimeout || c.Forward.MaxRequestBytes != 1<<20 {
		t.Fatalf("spool %+v", sp)
	}
	// 0 keeps dead letters until removed by hand.
	c, err = Parse([]byte(spoolBase+"  spool:\n    dead_letter_retention: 0s\n"), "x.yaml", nil, "")
	if err != nil || c.Forward.Spool.DeadLetterRetention != 0 {
		t.Fatalf("dead_letter_retention 0: %v %+v", err, c)
	}
	// Only the section without a bucket keeps the default bucket.
	c, err = Parse([]byte(spoolBase+"  spool:\n    max_bytes: 1MiB\n"), "x.yaml", nil, "")
	if err != nil || c.Forward.Spool.Bucket.Type != "FILESYSTEM" {
		t.Fatalf("spool without bucket: %v %+v", err, c)
	}

	for _, bad := range []struct{ yaml, key string }{
		{"  spool:\n    bucket:\n      type: S3\n      config: {bucket: b}\n", "forward.spool.bucket"},
		{"  spool:\n    bucket:\n      type: FILESYSTEM\n      config: {dir: x}\n", "forward.spool.bucket"},
		{"  spool:\n    send_deadline: 0s\n", "forward.spool.send_deadline"},
		{"  spool:\n    replay:\n      min_backoff: 10s\n      max_backoff: 1s\n", "forward.spool.replay.max_backoff"},
		{"  spool:\n    replay:\n      concurrency: 0\n", "forward.spool.replay"},
		{"  spool:\n    bukket: {}\n", "bukket"},
		{"  max_request_bytes: 0\n", "forward.max_request_bytes"},
	} {
		_, err := Parse([]byte(spoolBase+bad.yaml), "x.yaml", nil, "")
		if err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("%q: error %v, want one naming %s", bad.yaml, err, bad.key)
		}
	}
	// Disabled: the bucket is not checked.
	if _, err := Parse([]byte(spoolBase+"  spool:\n    enabled: false\n    bucket: {type: S3}\n"), "x.yaml", nil, ""); err != nil {
		t.Fatalf("disabled spool validated: %v", err)
	}
}
