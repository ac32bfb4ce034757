package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"

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

// runAction parses args on the lean command line and runs the action
// chosen, capturing its standard output.
func runAction(t *testing.T, args ...string) (string, error) {
	t.Helper()
	c, cmd, actions := parse(t, false, args...)
	var out bytes.Buffer
	c.stdout = &out
	for _, a := range actions {
		if a.Name == cmd {
			err := a.Run(log.NewNopLogger())
			return out.String(), err
		}
	}
	t.Fatalf("no action %q", cmd)
	return "", nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$`)

// --print-id generates the installation ID on first use and prints the
// same one on every later run; --rotate-id replaces it; with --id, that
// ID is printed and cannot be rotated.
func TestPrintAndRotateID(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	first, err := runAction(t, "--state-dir="+state, "--print-id")
	if err != nil || !uuidRE.MatchString(first) {
		t.Fatalf("--print-id: %q %v", first, err)
	}
	second, err := runAction(t, "--state-dir="+state, "--print-id")
	if err != nil || second != first {
		t.Fatalf("second run printed %q (%v), want the kept %q", second, err, first)
	}
	if b, _ := os.ReadFile(filepath.Join(state, client.IDFile)); string(b) != first {
		t.Errorf("state file holds %q", b)
	}
	rotated, err := runAction(t, "--state-dir="+state, "--rotate-id")
	if err != nil || !uuidRE.MatchString(rotated) || rotated == first {
		t.Fatalf("--rotate-id: %q %v", rotated, err)
	}
	if now, _ := runAction(t, "--state-dir="+state, "--print-id"); now != rotated {
		t.Errorf("after rotation --print-id says %q, want %q", now, rotated)
	}
	// The config file's state_dir is honoured (relative to the file).
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "client.yaml"), []byte("state_dir: st\n"), 0o600)
	fromFile, err := runAction(t, "--config.file="+filepath.Join(dir, "client.yaml"), "--print-id")
	if got, _ := client.ReadID(filepath.Join(dir, "st")); err != nil || fromFile != got+"\n" {
		t.Errorf("state_dir from the config file: printed %q (%v), kept %q", fromFile, err, got)
	}
	if out, err := runAction(t, "--id=cluster-7", "--state-dir="+state, "--print-id"); err != nil || out != "cluster-7\n" {
		t.Errorf("--id with --print-id: %q %v", out, err)
	}
	if _, err := runAction(t, "--id=cluster-7", "--state-dir="+state, "--rotate-id"); err == nil {
		t.Error("--rotate-id with --id: no error")
	}
}

// fakeGateway answers /authorize and /upload with status.
func fakeGateway(t *testing.T, status int) (*httptest.Server, *int) {
	var uploads int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/authorize":
			fmt.Fprintf(w, `{"version":1,"token":"jwt","expiresInSeconds":3600,"labels":{"_id":%q}}`, r.URL.Query().Get("id"))
		case "/upload":
			uploads++
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &uploads
}

// --once collects and uploads one snapshot and returns: no error (exit 0)
// when sent, an error (exit 1) when refused or when the source cannot be
// read; in federate and scrape modes.
func TestOnceExitStatus(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			fmt.Fprintln(w, "app_up 1\nother 2")
		case "/federate":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			fmt.Fprintln(w, "app_up 1")
		default:
			http.NotFound(w, r)
		}
	}))
	defer app.Close()
	state := t.TempDir()
	base := []string{"--once", "--to-token=t", "--match=app_up", "--state-dir=" + state, "--interval=2s", "--min-backoff=10ms", "--max-backoff=20ms"}
	for _, tc := range []struct {
		name    string
		status  int
		from    string
		ok      bool
		uploads int
	}{
		{"scrape sent", 200, "--from-scrape=" + app.URL + "/metrics", true, 1},
		{"federate sent", 200, "--from=" + app.URL, true, 1},
		{"scrape refused", 400, "--from-scrape=" + app.URL + "/metrics", false, 1},
		{"source missing", 200, "--from-scrape=" + app.URL + "/missing", false, 0},
	} {
		gw, uploads := fakeGateway(t, tc.status)
		_, err := runAction(t, append([]string{tc.from, "--to=" + gw.URL}, base...)...)
		if (err == nil) != tc.ok || *uploads != tc.uploads {
			t.Errorf("%s: err %v, %d uploads; want ok=%v and %d uploads", tc.name, err, *uploads, tc.ok, tc.uploads)
		}
	}
	if _, err := runAction(t, "--once", "--dry-run", "--from=http://x", "--match=up"); err == nil {
		t.Error("--once with --dry-run: no error")
	}
}

// The scrape mode's flags land in the config.
func TestScrapeFlags(t *testing.T) {
	c, _, _ := parse(t, true, "--from-scrape=http://a/metrics", "--from-scrape=http://b/om", "--from-basic-auth-user=u",
		"--from-basic-auth-password-file=/p", "--from-server-name=app.internal", "--from-insecure-skip-verify", "--state-dir=/var/lib/x")
	cfg, err := c.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.FromScrape, []string{"http://a/metrics", "http://b/om"}) || cfg.FromBasicAuthUser != "u" ||
		cfg.FromBasicAuthPasswordFile != "/p" || cfg.FromServerName != "app.internal" || !cfg.FromInsecureSkipVerify ||
		cfg.StateDir != "/var/lib/x" || cfg.LimitBytes != client.DefaultScrapeLimitBytes {
		t.Errorf("config %+v", cfg)
	}
}
