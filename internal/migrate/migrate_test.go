package migrate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	config_util "github.com/prometheus/common/config"

	"github.com/telegate/telegate/allowlist"
	"github.com/telegate/telegate/config"
)

// sharedKey is the telemeter-server key of authn's fixtures.
const sharedKey = "../../authn/testdata/telemeter/shared-key.pem"

func translate(t *testing.T, workDir string, args ...string) *Result {
	t.Helper()
	r, err := Translate(context.Background(), args, Options{WorkDir: workDir})
	if err != nil {
		t.Fatalf("Translate: %v", err)
	}
	return r
}

// write writes r into a new directory and loads gateway.yaml with the
// gateway's own loader.
func write(t *testing.T, r *Result) (string, *config.Config) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	if err := r.Write(dir, false); err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadFile(filepath.Join(dir, GatewayFile))
	if err != nil {
		t.Fatalf("the written config does not load: %v\n%s", err, r.Files[GatewayFile])
	}
	return dir, c
}

func flags(notes []Note) []string {
	var out []string
	for _, n := range notes {
		out = append(out, n.Flag)
	}
	return out
}

func TestTranslateFullCommandLine(t *testing.T) {
	work := t.TempDir()
	key, err := os.ReadFile(sharedKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	// A whitelist file as telemeter-server reads it: one rule per line,
	// blank lines skipped, a rule repeated from --whitelist.
	wl := "{__name__=\"up\"}\n\n  {__name__=\"cluster_version\"}  \n{__name__=~\"cluster:usage:.*\",label!=\"x\"}\n"
	if err := os.WriteFile(filepath.Join(work, "whitelist"), []byte(wl), 0o600); err != nil {
		t.Fatal(err)
	}
	r := translate(t, work,
		"--listen=0.0.0.0:8443", "--listen-internal", "127.0.0.1:8081",
		"--shared-key=key.pem", "--token-expire-seconds=3600",
		"--authorize=https://api.example.com/api/accounts_mgmt/v1/cluster_registrations",
		"--forward-url=http://thanos-receive:19291/api/v1/receive", "--tenant-id=telemetry",
		"--whitelist={__name__=\"up\"}", "--whitelist", "{__name__=\"alerts\",alertstate=\"firing\"}",
		"--whitelist-file=whitelist",
		"--elide-label=prometheus_replica", "--elide-label", "pod",
		"--label=env=prod,team=t", "--required-label=region=eu-west",
		"--partition-label=_id", "--ratelimit=2m", "--limit-bytes=1048576", "--limit-receive-bytes=262144",
		"--memcached=m1:11211,m2:11211", "--memcached-expire=600", "--tenant-key=org",
		"--internal.tracing.endpoint=jaeger:6831", "--log-level=warn",
	)
	dir, c := write(t, r)

	if c.Web.ListenAddress != "0.0.0.0:8443" || c.Web.InternalListenAddress != "127.0.0.1:8081" {
		t.Errorf("web: %+v", c.Web)
	}
	if c.Authn.TokensFile != "" || c.Authn.Authorizer.URL != "https://api.example.com/api/accounts_mgmt/v1/cluster_registrations" {
		t.Errorf("authn: tokens_file %q authorizer %q", c.Authn.TokensFile, c.Authn.Authorizer.URL)
	}
	if c.Authn.JWT.SigningKeyFile != filepath.Join(work, "key.pem") || time.Duration(c.Authn.JWT.Expiry) != time.Hour {
		t.Errorf("jwt: %+v", c.Authn.JWT)
	}
	if tc := c.Authn.JWT.TelemeterCompat; !tc.Accept || !tc.Issue {
		t.Errorf("telemeter_compat: %+v", tc)
	}
	if !reflect.DeepEqual(c.Relabel.DropLabels, []string{"prometheus_replica", "pod"}) {
		t.Errorf("drop_labels: %v", c.Relabel.DropLabels)
	}
	var stamped []string
	for _, rc := range c.Relabel.RelabelConfigs {
		stamped = append(stamped, rc.TargetLabel+"="+rc.Replacement)
	}
	if !reflect.DeepEqual(stamped, []string{"env=prod", "team=t", "region=eu-west"}) {
		t.Errorf("relabel_configs stamp %v", stamped)
	}
	if time.Duration(c.Limits.UploadInterval) != 2*time.Minute || c.Limits.MaxRequestBytes != 1<<20 || c.Limits.MaxDecodedBytes != 8<<20 {
		t.Errorf("limits: interval %v request %d decoded %d", c.Limits.UploadInterval, c.Limits.MaxRequestBytes, c.Limits.MaxDecodedBytes)
	}
	if c.Forward.Sender.URL != "http://thanos-receive:19291/api/v1/receive" || c.Forward.Sender.Headers["THANOS-TENANT"] != "telemetry" || c.Forward.Spool.Enabled {
		t.Errorf("forward: url %q headers %v spool %v", c.Forward.Sender.URL, c.Forward.Sender.Headers, c.Forward.Spool.Enabled)
	}
	if !slices.Contains(r.GatewayFlags, "--log.level=warn") {
		t.Errorf("gateway flags %v lack --log.level=warn", r.GatewayFlags)
	}

	// The allowlist parses as is, one entry per distinct rule.
	data, err := os.ReadFile(filepath.Join(dir, AllowlistFile))
	if err != nil {
		t.Fatal(err)
	}
	al, err := allowlist.Parse(data, AllowlistFile)
	if err != nil {
		t.Fatalf("allowlist: %v\n%s", err, data)
	}
	var sels []string
	for _, e := range al.Entries {
		sels = append(sels, e.Selector)
	}
	want := []string{`{__name__="up"}`, `{__name__="alerts",alertstate="firing"}`, `{__name__="cluster_version"}`, `{__name__=~"cluster:usage:.*",label!="x"}`}
	if !reflect.DeepEqual(sels, want) {
		t.Errorf("allowlist entries %q, want %q", sels, want)
	}

	// Every flag given is accounted for.
	for _, f := range []string{"--listen", "--shared-key", "--authorize", "--whitelist", "--whitelist-file", "--elide-label", "--label", "--ratelimit", "--forward-url", "--tenant-id", "--token-expire-seconds", "--partition-label", "--log-level"} {
		if !slices.Contains(flags(r.Translated), f) {
			t.Errorf("%s not reported as translated", f)
		}
	}
	for _, f := range []string{"--memcached", "--memcached-expire", "--tenant-key", "--internal.tracing.endpoint", "--required-label", "--limit-bytes"} {
		if !slices.Contains(flags(r.Untranslated), f) {
			t.Errorf("%s not reported as untranslated: %v", f, r.Untranslated)
		}
	}
	// The header names the command line.
	if !strings.Contains(string(r.Files[GatewayFile]), "--memcached=m1:11211,m2:11211") {
		t.Errorf("gateway.yaml header lacks the command line:\n%s", r.Files[GatewayFile])
	}
}

// The owner placeholders fail `telegate allowlist lint` until filled in.
func TestAllowlistPlaceholdersLint(t *testing.T) {
	r := translate(t, t.TempDir(), `--whitelist={__name__="up"}`, `--whitelist={__name__="cluster_version"}`)
	data := r.Files[AllowlistFile]
	missing := func(data []byte) int {
		n := 0
		for _, f := range allowlist.Lint(data, AllowlistFile, allowlist.LintOptions{}) {
			if f.Rule == allowlist.RuleMissingOwners && f.Severity == allowlist.SeverityError {
				n++
			}
		}
		return n
	}
	if n := missing(data); n != 2 {
		t.Fatalf("lint: %d missing-owners errors, want 2\n%s", n, data)
	}
	filled := strings.ReplaceAll(string(data), OwnerPlaceholder, "owners: (@openshift/team-monitoring)")
	if n := missing([]byte(filled)); n != 0 {
		t.Fatalf("lint after filling in the owners: %d missing-owners errors", n)
	}
	for _, f := range allowlist.Lint([]byte(filled), AllowlistFile, allowlist.LintOptions{}) {
		if f.Severity == allowlist.SeverityError {
			t.Errorf("lint after filling in the owners: %s", f)
		}
	}
}

// telemeter-server's defaults, with no flags at all.
func TestTranslateDefaults(t *testing.T) {
	r := translate(t, t.TempDir())
	_, c := write(t, r)
	if c.Web.ListenAddress != "0.0.0.0:9003" || c.Web.InternalListenAddress != "localhost:9004" {
		t.Errorf("web: %+v", c.Web)
	}
	if c.Authn.TokensFile != TokensFile || r.Files[TokensFile] == nil {
		t.Errorf("without --authorize: tokens_file %q", c.Authn.TokensFile)
	}
	if time.Duration(c.Authn.JWT.Expiry) != 24*time.Hour || time.Duration(c.Limits.UploadInterval) != 4*time.Minute+30*time.Second {
		t.Errorf("expiry %v interval %v", c.Authn.JWT.Expiry, c.Limits.UploadInterval)
	}
	if len(c.Relabel.DropLabels) != 0 {
		t.Errorf("drop_labels %v: telemeter-server elides nothing by default", c.Relabel.DropLabels)
	}
	if c.Limits.MaxRequestBytes != 500<<10 {
		t.Errorf("max_request_bytes %d, want telemeter's --limit-bytes default", c.Limits.MaxRequestBytes)
	}
	for _, f := range []string{"--authorize", "--shared-key", "--forward-url", "--whitelist"} {
		if !slices.Contains(flags(r.Untranslated), f) {
			t.Errorf("%s missing from the untranslated list: %v", f, r.Untranslated)
		}
	}
	al, err := allowlist.Parse(r.Files[AllowlistFile], AllowlistFile)
	if err != nil || len(al.Entries) != 0 {
		t.Fatalf("empty allowlist: %v, %v", al, err)
	}
}

func TestTranslateTLSAndOIDC(t *testing.T) {
	var discovered int
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/realms/x/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		discovered++
		w.Write([]byte(`{"issuer":"x","token_endpoint":"https://sso.example.com/token"}`))
	}))
	defer issuer.Close()
	work := t.TempDir()
	r, err := Translate(context.Background(), []string{
		"--tls-crt=tls/tls.crt", "--tls-key=tls/tls.key",
		"--authorize=http://authz/", "--forward-url=http://receive/api/v1/receive",
		"--oidc-issuer=" + issuer.URL + "/realms/x", "--client-id=telemeter", "--client-secret", "s3cr3t", "--oidc-audience=observatorium",
	}, Options{WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	if discovered != 1 {
		t.Fatalf("discovery calls: %d", discovered)
	}
	dir, c := write(t, r)
	if strings.Contains(string(r.Files[GatewayFile]), "s3cr3t") {
		t.Fatal("the client secret is in gateway.yaml")
	}
	if st, err := os.Stat(filepath.Join(dir, ClientSecretFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("client secret file: %v %v", st, err)
	}
	for name, oa := range map[string]*config_util.OAuth2{"authorizer": c.Authn.Authorizer.HTTPClientConfig.OAuth2, "forward": c.Forward.Sender.HTTPClientConfig.OAuth2} {
		if oa == nil || oa.ClientID != "telemeter" || oa.TokenURL != "https://sso.example.com/token" ||
			oa.EndpointParams["audience"] != "observatorium" || oa.ClientSecretFile != filepath.Join(dir, ClientSecretFile) {
			t.Errorf("%s oauth2: %+v", name, oa)
		}
	}
	web := string(r.Files[WebConfigFile])
	if !strings.Contains(web, "cert_file: "+filepath.Join(work, "tls/tls.crt")) || !strings.Contains(web, "key_file: "+filepath.Join(work, "tls/tls.key")) {
		t.Errorf("web config:\n%s", web)
	}
	if !reflect.DeepEqual(r.GatewayFlags, []string{"--web.config.file=" + WebConfigFile, "--web.internal-config.file="}) {
		t.Errorf("gateway flags %v", r.GatewayFlags)
	}
	if strings.Contains(strings.Join(redact([]string{"--client-secret", "s3cr3t", "--client-secret=s3cr3t"}), " "), "s3cr3t") {
		t.Error("redact leaks the secret")
	}

	// Discovery failing is reported, and the config still loads.
	r = translate(t, work, "--authorize=http://authz/", "--oidc-issuer="+issuer.URL+"/nowhere", "--client-id=x")
	write(t, r)
	if !slices.Contains(flags(r.Untranslated), "--oidc-issuer") {
		t.Errorf("failed discovery not reported: %v", r.Untranslated)
	}
}

func TestTranslateErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown flag":      {[]string{"--listen-addr=x"}, "unknown flag --listen-addr"},
		"missing value":     {[]string{"--listen"}, "needs an argument"},
		"positional":        {[]string{"serve"}, "takes no arguments"},
		"bad duration":      {[]string{"--ratelimit=often"}, "not a duration"},
		"bad int":           {[]string{"--limit-bytes=1MB"}, "not an integer"},
		"one TLS half":      {[]string{"--tls-crt=a"}, "both --tls-key and --tls-crt"},
		"bad label":         {[]string{"--label=nokey"}, "key=value"},
		"bad whitelist":     {[]string{"--whitelist={__name__=}"}, "whitelist rule"},
		"no whitelist file": {[]string{"--whitelist-file=/nonexistent/wl"}, "--whitelist-file"},
		"zero expiry":       {[]string{"--token-expire-seconds=0"}, "positive"},
		"unknown shorthand": {[]string{"-x"}, "unknown shorthand"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Translate(context.Background(), tc.args, Options{WorkDir: t.TempDir()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// pflag's syntax: StringSlice flags split on commas (CSV), StringArray
// flags do not, booleans take an optional =value.
func TestParseFlags(t *testing.T) {
	fs, err := parseFlags([]string{"--label", `a=1,"b=2,3"`, "--label=c=4", `--whitelist={__name__=~"a|b",x="1,2"}`, "-v", "--verbose=false", "--"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fs.list("label"); !reflect.DeepEqual(got, []string{"a=1", "b=2,3", "c=4"}) {
		t.Errorf("label %q", got)
	}
	if got := fs.list("whitelist"); !reflect.DeepEqual(got, []string{`{__name__=~"a|b",x="1,2"}`}) {
		t.Errorf("whitelist %q", got)
	}
	if fs.bool("verbose") {
		t.Error("--verbose=false after -v: the last one wins")
	}
	if fs.str("listen") != "0.0.0.0:9003" || fs.set("listen") {
		t.Error("default of an unset flag")
	}
}

func TestWriteRefusesToOverwrite(t *testing.T) {
	r := translate(t, t.TempDir())
	dir := t.TempDir()
	if err := r.Write(dir, false); err != nil {
		t.Fatal(err)
	}
	if err := r.Write(dir, false); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second Write: %v", err)
	}
	if err := r.Write(dir, true); err != nil {
		t.Fatalf("Write with overwrite: %v", err)
	}
}

// A DER key, which telemeter-server reads and telegate does not, is
// reported.
func TestSharedKeyChecked(t *testing.T) {
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "key.der"), []byte{0x30, 0x77, 0x02, 0x01}, 0o600); err != nil {
		t.Fatal(err)
	}
	r := translate(t, work, "--shared-key=key.der", "--authorize=http://a/")
	var found bool
	for _, n := range r.Untranslated {
		found = found || n.Flag == "--shared-key" && strings.Contains(n.Text, "PEM")
	}
	if !found {
		t.Fatalf("DER key not reported: %v", r.Untranslated)
	}
	r = translate(t, work, "--shared-key="+filepath.Join(mustAbs(t, sharedKey)), "--authorize=http://a/")
	for _, n := range r.Untranslated {
		if n.Flag == "--shared-key" {
			t.Fatalf("a PEM key reported: %v", n)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
