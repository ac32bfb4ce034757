// Command fakeproc is a small, predictable child process for the harness
// self-tests: it serves /-/ready, logs to stdout and stderr, and can ignore
// SIGTERM or exit on its own.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to serve /-/ready on (empty: no HTTP)")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM (only SIGKILL stops it)")
	exitAfter := flag.Duration("exit-after", 0, "exit by itself after this long")
	exitCode := flag.Int("exit-code", 0, "exit code used by -exit-after and SIGTERM")
	flag.Parse()

	fmt.Fprintf(os.Stdout, "fakeproc started pid=%d args=%q\n", os.Getpid(), os.Args[1:])
	fmt.Fprintln(os.Stderr, "fakeproc stderr hello")

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	if *listen != "" {
		http.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, "ready")
		})
		go func() {
			if err := http.ListenAndServe(*listen, nil); err != nil {
				fmt.Fprintln(os.Stderr, "listen:", err)
				os.Exit(3)
			}
		}()
	}
	var exit <-chan time.Time
	if *exitAfter > 0 {
		exit = time.After(*exitAfter)
	}
	for {
		select {
		case <-sigs:
			if *ignoreTerm {
				fmt.Fprintln(os.Stderr, "fakeproc ignoring SIGTERM")
				continue
			}
			fmt.Fprintln(os.Stderr, "fakeproc got SIGTERM")
		case <-exit:
			fmt.Fprintln(os.Stderr, "fakeproc exiting by itself")
		}
		os.Exit(*exitCode)
	}
}
