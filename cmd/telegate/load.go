package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/telegate/telegate/test/load"
)

type loadCmd struct {
	cmd      *kingpin.CmdClause
	cfg      load.Config
	sink     string
	names    int
	perName  int
	showAllo bool
}

func init() {
	subcommands = append(subcommands, func(app *kingpin.Application) (string, func(log.Logger) error) {
		l := registerLoad(app)
		return l.cmd.FullCommand(), l.run
	})
}

func registerLoad(app *kingpin.Application) *loadCmd {
	l := &loadCmd{}
	l.cmd = app.Command("load", "Simulate a fleet of clusters against a gateway on this machine (loopback only) and report rate, latency, status codes and the gateway's CPU and memory per upload.")
	l.cmd.Flag("target", "Gateway public base URL (loopback only).").Default("http://127.0.0.1:9003").StringVar(&l.cfg.Target)
	l.cmd.Flag("metrics-url", "Gateway internal /metrics URL for its CPU and memory (loopback only); empty to skip.").Default("http://127.0.0.1:9004/metrics").StringVar(&l.cfg.MetricsURL)
	l.cmd.Flag("protocol", "upload (telemeter: /authorize then /upload) or remote-write (/api/v1/receive).").Default(load.ProtocolUpload).EnumVar(&l.cfg.Protocol, load.ProtocolUpload, load.ProtocolRemoteWrite)
	l.cmd.Flag("clusters", "Simulated clusters.").Default("100").IntVar(&l.cfg.Clusters)
	l.cmd.Flag("interval", "Each cluster's upload interval before --speedup.").Default("4m30s").DurationVar(&l.cfg.Interval)
	l.cmd.Flag("speedup", "Time compression: clusters upload every interval/speedup. Set the gateway's limits.upload_interval to the same quotient.").Default("1").Float64Var(&l.cfg.Speedup)
	l.cmd.Flag("duration", "Run time.").Default("1m").DurationVar(&l.cfg.Duration)
	l.cmd.Flag("max-requests", "Stop after this many requests.").Default("1000000").IntVar(&l.cfg.MaxRequests)
	l.cmd.Flag("token", "Pull-secret token every cluster presents (must be valid for any cluster ID).").Default("dev-token").StringVar(&l.cfg.Token)
	l.cmd.Flag("cluster-prefix", "Cluster IDs are this prefix plus an index.").Default("load-").StringVar(&l.cfg.ClusterPrefix)
	l.cmd.Flag("names", "Metric names per payload.").Default("20").IntVar(&l.names)
	l.cmd.Flag("series-per-name", "Series per metric name.").Default("50").IntVar(&l.perName)
	l.cmd.Flag("templates", "Distinct payloads shared by the clusters.").Default("16").IntVar(&l.cfg.Templates)
	l.cmd.Flag("concurrency", "Requests in flight at most.").Default("64").IntVar(&l.cfg.Concurrency)
	l.cmd.Flag("timeout", "Timeout of one request.").Default("30s").DurationVar(&l.cfg.Timeout)
	l.cmd.Flag("sink.listen-address", "Also run a remote-write receiver that only decodes on this loopback address (point the gateway's forward.url at http://ADDR/api/v1/write).").StringVar(&l.sink)
	l.cmd.Flag("print-allowlist", "Print an allowlist keeping half the payload's metric names, then exit.").BoolVar(&l.showAllo)
	return l
}

func (l *loadCmd) run(logger log.Logger) error {
	l.cfg.Spec = load.Spec{Names: l.names, SeriesPerName: l.perName, Seed: 1}
	if l.showAllo {
		_, err := os.Stdout.Write(l.cfg.Spec.AllowlistYAML())
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var sink *load.Sink
	if l.sink != "" {
		if err := load.CheckLoopback("http://" + l.sink); err != nil {
			return fmt.Errorf("--sink.listen-address: %w", err)
		}
		ln, err := net.Listen("tcp", l.sink)
		if err != nil {
			return err
		}
		sink = &load.Sink{}
		mux := http.NewServeMux()
		mux.Handle("/api/v1/write", sink)
		mux.Handle("/api/v1/receive", sink)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		level.Info(logger).Log("msg", "sink listening", "addr", ln.Addr())
	}
	l.cfg.Progress = os.Stderr
	level.Info(logger).Log("msg", "starting fleet", "protocol", l.cfg.Protocol, "clusters", l.cfg.Clusters,
		"period", time.Duration(float64(l.cfg.Interval)/max(l.cfg.Speedup, 1)), "duration", l.cfg.Duration)
	res, err := load.Run(ctx, l.cfg)
	if err != nil {
		return err
	}
	if _, err := res.WriteTo(os.Stdout); err != nil {
		return err
	}
	if sink != nil {
		fmt.Printf("sink                %d requests, %d samples, %d rejected\n", sink.Requests(), sink.Samples(), sink.Rejected())
	}
	if res.Writes == 0 {
		return errors.New("no write was answered: is the gateway running at --target?")
	}
	return nil
}
