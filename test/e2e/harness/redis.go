package harness

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisEnv overrides the path of the redis-server binary.
const RedisEnv = "TELEGATE_E2E_REDIS"

// DefaultRedisBinary is where Debian's redis-server package installs it.
const DefaultRedisBinary = "/usr/bin/redis-server"

// RedisBinary returns the redis-server executable ($TELEGATE_E2E_REDIS,
// /usr/bin/redis-server or redis-server in PATH), failing the test if it
// is missing.
func RedisBinary(t testing.TB) string {
	t.Helper()
	return RequireBinary(t, RedisEnv, "run `make test`, which installs the redis-server package", DefaultRedisBinary, "redis-server")
}

// RedisOptions describe a redis-server to run.
type RedisOptions struct {
	// Persist keeps the data across Restart (append-only file, fsync on
	// every write) in the process' directory. Without it nothing is saved.
	Persist bool
	// Password sets requirepass.
	Password string
}

// Redis is a redis-server owned by a test, listening on 127.0.0.1.
type Redis struct {
	proc *Process
	addr string
	opts RedisOptions
}

// StartRedis runs redis-server on a free loopback port and waits until it
// answers PING. It is stopped when the test ends.
func StartRedis(t testing.TB, opts ...RedisOptions) *Redis {
	t.Helper()
	var o RedisOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	port := FreePort(t)
	dir := t.TempDir()
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--protected-mode", "no"}
	if o.Persist {
		args = append(args, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	if o.Password != "" {
		args = append(args, "--requirepass", o.Password)
	}
	r := &Redis{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), opts: o}
	r.proc = StartProcess(t, ProcessOptions{Name: "redis", Binary: RedisBinary(t), Args: args, Dir: dir})
	r.wait(t)
	return r
}

// Addr returns host:port.
func (r *Redis) Addr() string { return r.addr }

// Process returns the underlying process (Stop, Kill, logs).
func (r *Redis) Process() *Process { return r.proc }

// Restart stops and starts redis-server again on the same port; with
// Persist its data survives.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.proc.Restart()
	r.wait(t)
}

func (r *Redis) wait(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = r.ping(); err == nil {
			return
		}
		select {
		case <-r.proc.Exited():
			r.proc.dumpLogs()
			t.Fatalf("harness: redis exited before answering: %v", r.proc.exitErr())
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.proc.dumpLogs()
	t.Fatalf("harness: redis at %s not ready: %v", r.addr, err)
}

// ping speaks just enough RESP to know the server is up and has loaded
// its data (a loading server answers -LOADING).
func (r *Redis) ping() error {
	c, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	cmd := "PING\r\n"
	if r.opts.Password != "" {
		cmd = fmt.Sprintf("AUTH %s\r\nPING\r\n", r.opts.Password)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "+PONG":
			return nil
		case strings.HasPrefix(line, "-"):
			return fmt.Errorf("redis answered %s", line)
		}
	}
}
