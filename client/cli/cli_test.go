package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/telegate/telegate/client"
)

// parse registers the client on a fresh application, either under a
// `client` subcommand (telegate) or on the application itself
// (telegate-client), and parses args.
func parse(t *testing.T, sub bool, args ...string) (*Command, string, []Action) {
	t.Helper()
	app := kingpin.New("test", "")
	app.Terminate(nil)
	var on flagCommander = app
	if sub {
		on = app.Command("client", Help)
		args = append([]string{"client"}, args...)
	}
	c, actions := Register(on, "v1.2.3")
	cmd, err := app.Parse(args)
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return c, cmd, actions
}

// Flags override the keys of --config.file of the same name; keys no flag
// names keep the file's value; defaults fill the rest. The same on both
// binaries' command lines.
func TestFlagsOverrideConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "client.yaml")
	if err := os.WriteFile(file, []byte("id: from-file\nfrom: http://prom:9090\nto: http://gw\nto_token: tok\nmatch: ['up']\ninterval: 1m\nlabel: {a: b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []bool{true, false} {
		c, cmd, actions := parse(t, sub, "--config.file="+file, "--id=from-flag", "--match={job=\"x\"}", "--match=up",
			"--rename=a=b,c=d", "--elide-label=x,y", "--limit-bytes=1KiB", "--staging-keep=3", "--from-timeout=5s")
		if want := actions[0].Name; cmd != want {
			t.Errorf("sub=%v: no command given ran %q, want run (%q)", sub, cmd, want)
		}
		cfg, err := c.LoadConfig()
		if err != nil {
			t.Fatalf("sub=%v: %v", sub, err)
		}
		if cfg.ID != "from-flag" || cfg.From != "http://prom:9090" || cfg.ToToken != "tok" {
			t.Errorf("sub=%v: id %q from %q to_token %q", sub, cfg.ID, cfg.From, cfg.ToToken)
		}
		if want := []string{`{job="x"}`, "up"}; !reflect.DeepEqual(cfg.Match, want) {
			t.Errorf("sub=%v: match %q, want %q (--match is not comma-split)", sub, cfg.Match, want)
		}
		if want := map[string]string{"a": "b", "c": "d"}; !reflect.DeepEqual(cfg.Rename, want) {
			t.Errorf("sub=%v: rename %v, want %v", sub, cfg.Rename, want)
		}
		if want := []string{"x", "y"}; !reflect.DeepEqual(cfg.ElideLabel, want) {
			t.Errorf("sub=%v: elide_label %q, want %q", sub, cfg.ElideLabel, want)
		}
		if want := map[string]string{"a": "b"}; !reflect.DeepEqual(cfg.Label, want) {
			t.Errorf("sub=%v: label %v, want the file's %v", sub, cfg.Label, want)
		}
		if cfg.LimitBytes != 1024 || cfg.StagingKeep != 3 || time.Duration(cfg.FromTimeout) != 5*time.Second || time.Duration(cfg.Interval) != time.Minute {
			t.Errorf("sub=%v: limit_bytes %d staging_keep %d from_timeout %v interval %v", sub, cfg.LimitBytes, cfg.StagingKeep, cfg.FromTimeout, cfg.Interval)
		}
		if cfg.Listen != "localhost:9002" {
			t.Errorf("sub=%v: listen %q, want the default", sub, cfg.Listen)
		}
	}
}

// Without a config file and flags, the defaults; a bad flag value names
// the flag.
func TestLoadConfigDefaultsAndErrors(t *testing.T) {
	c, _, _ := parse(t, false)
	cfg, err := c.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	def := &client.Config{}
	def.SetDefaults()
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("no flags: %+v, want the defaults %+v", cfg, def)
	}
	for _, args := range [][]string{{"--limit-bytes=lots"}, {"--label=novalue"}, {"--interval=soon"}, {"--staging-keep=x"}} {
		c, _, _ := parse(t, true, args...)
		if _, err := c.LoadConfig(); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

// inspect is a subcommand with its path argument and --index, under both
// command lines.
func TestInspectSubcommand(t *testing.T) {
	for _, sub := range []bool{true, false} {
		args := []string{"inspect", "/some/dir", "--index=2"}
		c, cmd, actions := parse(t, sub, args...)
		if cmd != actions[1].Name || c.inspectPath != "/some/dir" || c.inspectIndex != 2 {
			t.Errorf("sub=%v: command %q (want %q), path %q, index %d", sub, cmd, actions[1].Name, c.inspectPath, c.inspectIndex)
		}
	}
}
