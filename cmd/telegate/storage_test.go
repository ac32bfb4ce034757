package main

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-kit/log"

	"github.com/telegate/telegate/config"
)

func TestStorageFlagsOverrideConfig(t *testing.T) {
	parse := func(doc string) *config.Config {
		c, err := config.Parse([]byte(doc), "gw.yaml", fstest.MapFS{}, "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := parse("storage: {path: /from/file, retention_time: 30d, retention_size: 1GiB}\n")
	f := storageFlags{path: "/from/flag", retentionTime: "2d", retentionSize: "512MiB"}
	if err := f.apply(c, log.NewNopLogger()); err != nil {
		t.Fatal(err)
	}
	if c.Storage.Path != "/from/flag" || time.Duration(c.Storage.RetentionTime) != 48*time.Hour || c.Storage.RetentionSize != 512<<20 {
		t.Fatalf("flags not applied: %+v", c.Storage)
	}
	// Flags not given keep the file's values.
	c = parse("storage: {path: /from/file, retention_time: 30d, retention_size: 1GiB}\n")
	if err := (&storageFlags{}).apply(c, log.NewNopLogger()); err != nil || c.Storage.Path != "/from/file" ||
		time.Duration(c.Storage.RetentionTime) != 30*24*time.Hour || c.Storage.RetentionSize != 1<<30 {
		t.Fatalf("file values lost: %+v %v", c.Storage, err)
	}
	for _, tc := range []struct {
		f    storageFlags
		want string
	}{
		{storageFlags{retentionTime: "soon"}, "--storage.retention.time"},
		{storageFlags{retentionSize: "-1"}, "--storage.retention.size"},
	} {
		if err := tc.f.apply(parse("web: {}\n"), log.NewNopLogger()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v", tc.f, err)
		}
	}
	// With forward.url set the flags do not apply.
	c = parse("forward: {url: 'http://127.0.0.1:9090/api/v1/write'}\n")
	if err := f.apply(c, log.NewNopLogger()); err != nil || c.Storage.Path != "./data" {
		t.Fatalf("forward mode: %+v %v", c.Storage, err)
	}
}
