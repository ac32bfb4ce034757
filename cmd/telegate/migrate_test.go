package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
)

// telegate migrate telemeter-server --out=DIR -- <flags> writes a config
// the gateway loads (--config.check builds every component, reading the
// key) and an allowlist lint rejects until the owners are filled in.
func TestMigrateTelemeterServerCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	key, err := filepath.Abs("../../authn/testdata/telemeter/shared-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := &migrateCmd{stdout: &out}
	app := kingpin.New("telegate", "")
	cmd := c.register(app)
	parsed, err := app.Parse([]string{"migrate", "telemeter-server", "--out=" + dir, "--",
		"--shared-key=" + key, "--authorize=http://127.0.0.1:1/authz", "--forward-url=http://127.0.0.1:1/api/v1/receive",
		`--whitelist={__name__="up"}`, "--memcached=m:11211", "--listen=127.0.0.1:0", "--listen-internal=127.0.0.1:0"})
	if err != nil || parsed != cmd.FullCommand() {
		t.Fatalf("parse: %q %v", parsed, err)
	}
	if err := c.run(log.NewNopLogger()); err != nil {
		t.Fatal(err)
	}
	report := out.String()
	for _, want := range []string{"--memcached:", "NOT translated", "--shared-key: authn.jwt.signing_key_file"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}

	g := &gatewayCmd{configFile: filepath.Join(dir, "gateway.yaml"), printConfigOnly: true}
	if err := g.run(log.NewNopLogger()); err != nil {
		t.Fatalf("gateway --config.check on the written config: %v", err)
	}

	lint := func() error {
		a := &allowlistCmd{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, lintFiles: []string{filepath.Join(dir, "allowlist.yaml")}, lintFormat: "text"}
		return a.runLint(log.NewNopLogger())
	}
	if err := lint(); err == nil {
		t.Fatal("allowlist lint accepts the owner placeholders")
	}
	al := filepath.Join(dir, "allowlist.yaml")
	data, _ := os.ReadFile(al)
	if err := os.WriteFile(al, []byte(strings.ReplaceAll(string(data), "owners: ()", "owners: (@org/team)")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := lint(); err != nil {
		t.Fatalf("lint after the owners are filled in: %v", err)
	}

	// A second run refuses to overwrite.
	if err := c.run(log.NewNopLogger()); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second run: %v", err)
	}
}
