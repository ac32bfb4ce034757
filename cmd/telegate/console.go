package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"time"

	"github.com/telegate/telegate/config"
	"github.com/telegate/telegate/console"
	"github.com/telegate/telegate/examples"
	"github.com/telegate/telegate/forward"
	"github.com/telegate/telegate/gateway"
	"github.com/telegate/telegate/limits"
)

// newConsole builds the web console the internal listener serves at /
// (docs/console.md).
func (g *gatewayCmd) newConsole(c *config.Config, gw *gateway.Gateway, spool *forward.Spool, redis *limits.RedisStore) (func(*http.ServeMux), error) {
	o := console.Options{
		Gateway:      gw,
		Mode:         "forwarding",
		Version:      version,
		RedisAddress: c.Limits.Redis.Address,
		Config:       console.ConfigInfo{Origin: c.Origin, Hash: g.configHash(), LoadedAt: time.Now().UTC()},
	}
	if c.EmbeddedStorage() {
		o.Mode = "single-binary"
	}
	if redis != nil {
		o.Replicas = func(ctx context.Context) ([]limits.ReplicaSeen, error) {
			return redis.Replicas(ctx, time.Now(), replicaTTL)
		}
	}
	if spool != nil {
		o.Spool = func() console.SpoolStats {
			objects, bytes, oldest := spool.Stats()
			dead, deadBytes := spool.DeadStats()
			return console.SpoolStats{Objects: objects, Bytes: bytes, Oldest: oldest, DeadObjects: dead, DeadBytes: deadBytes}
		}
	}
	con, err := console.New(o)
	if err != nil {
		return nil, err
	}
	return con.Register, nil
}

// Replicas sharing a Redis say so every replicaBeat; one silent for
// replicaTTL is no longer listed.
const (
	replicaBeat = 10 * time.Second
	replicaTTL  = 45 * time.Second
)

// replicaName names this replica in the heartbeats: the host name (the
// pod's) and the public listen address.
func replicaName(c *config.Config) string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return host + "/" + c.Web.ListenAddress
}

// heartbeat records this replica in Redis every replicaBeat until ctx
// ends (failures are the budgets' concern, not logged here).
func heartbeat(ctx context.Context, redis *limits.RedisStore, name string) error {
	t := time.NewTicker(replicaBeat)
	defer t.Stop()
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		redis.Heartbeat(c, name, time.Now(), replicaTTL)
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// configHash is the first 12 hex digits of the SHA-256 of the config
// file the gateway was started with (the config is not reloaded).
func (g *gatewayCmd) configHash() string {
	var (
		data []byte
		err  error
	)
	if g.configFile == "" {
		data, err = fs.ReadFile(examples.FS, examples.GatewayConfig)
	} else {
		data, err = os.ReadFile(g.configFile)
	}
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:6])
}
