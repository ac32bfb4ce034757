package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/telegate/telegate/test/load"
)

type loadCmd struct {
	cmd      *kingpin.CmdClause
	cfg      load.Config
	sink     string
	sinkOnly bool
	output   string
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
	l.cmd.Flag("metrics-url", "Gateway internal /metrics URL for its CPU and memory (loopback only); empty to skip. Any process exposing process_cpu_seconds_total works (vmagent's /metrics).").Default("http://127.0.0.1:9004/metrics").StringVar(&l.cfg.MetricsURL)
	l.cmd.Flag("protocol", "upload (telemeter: /authorize then /upload) or remote-write (/api/v1/receive).").Default(load.ProtocolUpload).EnumVar(&l.cfg.Protocol, load.ProtocolUpload, load.ProtocolRemoteWrite)
	l.cmd.Flag("path", "Path of the write requests; empty = /upload or /api/v1/receive by --protocol (e.g. /api/v1/write to drive vmagent).").StringVar(&l.cfg.Path)
	l.cmd.Flag("clusters", "Simulated clusters.").Default("100").IntVar(&l.cfg.Clusters)
	l.cmd.Flag("interval", "Each cluster's upload interval before --speedup.").Default("4m30s").DurationVar(&l.cfg.Interval)
	l.cmd.Flag("speedup", "Time compression: clusters upload every interval/speedup. Set the gateway's limits.upload_interval to the same quotient.").Default("1").Float64Var(&l.cfg.Speedup)
	l.cmd.Flag("duration", "Run time.").Default("1m").DurationVar(&l.cfg.Duration)
	l.cmd.Flag("max-requests", "Stop after this many requests.").Default("1000000").IntVar(&l.cfg.MaxRequests)
	l.cmd.Flag("token", "Pull-secret token every cluster presents (must be valid for any cluster ID).").Default("dev-token").StringVar(&l.cfg.Token)
	l.cmd.Flag("cluster-prefix", "Cluster IDs are this prefix plus an index.").Default("load-").StringVar(&l.cfg.ClusterPrefix)
	l.cmd.Flag("names", "Metric names per payload.").Default("20").IntVar(&l.names)
	l.cmd.Flag("series-per-name", "Series per metric name.").Default("50").IntVar(&l.perName)
	l.cmd.Flag("id-label", "With --protocol upload: every series carries this label with its cluster's ID, as telemeter-client stamps _id (telemeter-server refuses series without it); each cluster then has its own body. Empty: none.").StringVar(&l.cfg.IDLabel)
	l.cmd.Flag("templates", "Distinct payloads shared by the clusters.").Default("16").IntVar(&l.cfg.Templates)
	l.cmd.Flag("concurrency", "Requests in flight at most.").Default("64").IntVar(&l.cfg.Concurrency)
	l.cmd.Flag("senders", "Closed loop instead of the fleet's schedule: this many senders each send the next write as soon as the previous one is answered, taking the clusters in turn (1: one request at a time; more than the target's cores: saturation). 0 keeps the schedule of --clusters, --interval and --speedup.").Default("0").IntVar(&l.cfg.Senders)
	l.cmd.Flag("timeout", "Timeout of one request.").Default("30s").DurationVar(&l.cfg.Timeout)
	l.cmd.Flag("settle", "Wait this long after the last answer before the final reading of --metrics-url, so that work the target does after answering (flushing batches downstream) counts in its CPU.").Default("0s").DurationVar(&l.cfg.Settle)
	l.cmd.Flag("output", "Report format: text or json.").Default("text").EnumVar(&l.output, "text", "json")
	l.cmd.Flag("sink.listen-address", "Also run a remote-write receiver that only decodes on this loopback address (point the gateway's forward.url at http://ADDR/api/v1/write); its counters are on http://ADDR/metrics.").StringVar(&l.sink)
	l.cmd.Flag("sink-only", "Run only the sink (--sink.listen-address), no fleet, until SIGINT or SIGTERM.").BoolVar(&l.sinkOnly)
	l.cmd.Flag("print-allowlist", "Print an allowlist keeping half the payload's metric names, then exit.").BoolVar(&l.showAllo)
	return l
}

// startSink serves a load.Sink on addr (loopback only): remote write on
// /api/v1/write and /api/v1/receive, its counters and process metrics on
// /metrics. It returns the address it listens on and a func that stops it.
func startSink(addr string, logger log.Logger) (*load.Sink, string, func(), error) {
	if err := load.CheckLoopback("http://" + addr); err != nil {
		return nil, "", nil, fmt.Errorf("--sink.listen-address: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", nil, err
	}
	sink := &load.Sink{}
	reg := prometheus.NewRegistry()
	if err := sink.Register(reg); err != nil {
		ln.Close()
		return nil, "", nil, err
	}
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/api/v1/write", sink)
	mux.Handle("/api/v1/receive", sink)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	level.Info(logger).Log("msg", "sink listening", "addr", ln.Addr())
	return sink, ln.Addr().String(), func() { srv.Close() }, nil
}

func (l *loadCmd) run(logger log.Logger) error {
	l.cfg.Spec = load.Spec{Names: l.names, SeriesPerName: l.perName, Seed: 1}
	if l.showAllo {
		_, err := os.Stdout.Write(l.cfg.Spec.AllowlistYAML())
		return err
	}
	if l.sinkOnly && l.sink == "" {
		return errors.New("--sink-only needs --sink.listen-address")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var sink *load.Sink
	if l.sink != "" {
		s, _, closeSink, err := startSink(l.sink, logger)
		if err != nil {
			return err
		}
		defer closeSink()
		sink = s
	}
	if l.sinkOnly {
		<-ctx.Done()
		c := sink.Counts()
		fmt.Printf("sink                %d requests, %d samples, %d rejected\n", c.Requests, c.Samples, c.Rejected)
		return nil
	}
	l.cfg.Progress = os.Stderr
	level.Info(logger).Log("msg", "starting fleet", "protocol", l.cfg.Protocol, "clusters", l.cfg.Clusters,
		"period", time.Duration(float64(l.cfg.Interval)/max(l.cfg.Speedup, 1)), "duration", l.cfg.Duration)
	res, err := load.Run(ctx, l.cfg)
	if err != nil {
		return err
	}
	if sink != nil {
		c := sink.Counts()
		res.Sink = &c
	}
	if err := writeResult(os.Stdout, res, l.output); err != nil {
		return err
	}
	if res.Writes == 0 {
		return errors.New("no write was answered: is the gateway running at --target?")
	}
	return nil
}

func writeResult(w io.Writer, res *load.Result, format string) error {
	if format == "json" {
		return res.WriteJSON(w)
	}
	_, err := res.WriteTo(w)
	return err
}
