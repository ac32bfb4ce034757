package authn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// telemeterServerBinary returns the telemeter-server binary to test
// against: $TELEMETER_SERVER_BIN, else telemeter-server on $PATH.
func telemeterServerBinary(t *testing.T) string {
	if p := os.Getenv("TELEMETER_SERVER_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("telemeter-server")
	if err != nil {
		t.Skip("no telemeter-server binary (set TELEMETER_SERVER_BIN); the fixture tests cover its tokens")
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestLiveTelemeterServer runs the real telemeter-server with the fixture
// key: telegate verifies the token its /authorize mints, and its /upload
// accepts a token telegate issued in its format.
func TestLiveTelemeterServer(t *testing.T) {
	bin := telemeterServerBinary(t)
	if testing.Short() {
		t.Skip("-short")
	}
	var forwarded atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded.Add(1)
	}))
	defer receiver.Close()

	key, err := filepath.Abs("testdata/telemeter/shared-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--listen="+listen, "--listen-internal="+freeAddr(t),
		"--shared-key="+key, "--forward-url="+receiver.URL+"/api/v1/receive", "--token-expire-seconds=600",
		`--whitelist={__name__="up"}`)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	base := "http://" + listen
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		req, _ := http.NewRequest(http.MethodPost, base+"/authorize?id=live-cluster", nil)
		req.Header.Set("Authorization", "Bearer pull-secret")
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("telemeter-server did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var ar struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ar)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/authorize: %d, %v", resp.StatusCode, err)
	}

	s := telemeterSigner(t, TelemeterCompat{Accept: true, Issue: true}, telemeterSharedKey(t)...)
	id, err := s.Verify(ar.Token)
	if err != nil || id.ClusterID != "live-cluster" {
		t.Fatalf("telegate verifies telemeter-server's token: %+v, %v", id, err)
	}

	tok, _, err := s.Issue(NewIdentity("telegate-cluster", "acct"))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("# TYPE up gauge\nup{_id=\"telegate-cluster\"} 1 %d\n", time.Now().UnixMilli())
	req, _ := http.NewRequest(http.MethodPost, base+"/upload", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "text/plain; version=0.0.4")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || forwarded.Load() != 1 {
		t.Fatalf("telemeter-server /upload with a telegate token: %d %q, %d forwarded", resp.StatusCode, msg, forwarded.Load())
	}
}
