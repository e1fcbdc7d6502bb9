// Command dproxy-bench runs dproxy's end-to-end load benchmark against CNCF
// Distribution (proxy mode) and nginx on loopback and writes the table of
// medians into docs/performance.md. `make bench-e2e` builds what it needs
// and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/dproxy/dproxy/internal/bench"
)

func main() {
	var o bench.Options
	var out, scenarios string
	var bwMB, coldMB, bigMiB, firstMiB int64
	flag.StringVar(&o.Dproxy, "dproxy", "bin/dproxy", "dproxy binary to run as `dproxy serve`")
	flag.StringVar(&o.Registry, "registry", "bin/registry", "CNCF Distribution v3 registry binary (the peer)")
	flag.StringVar(&o.Nginx, "nginx", "/usr/sbin/nginx", "nginx binary (the physical reference)")
	flag.StringVar(&out, "out", "docs/performance.md", "file whose generated section receives the table; empty prints it")
	flag.IntVar(&o.Runs, "runs", 3, "repetitions of every scenario (medians are reported)")
	flag.DurationVar(&o.Latency, "latency", 0, "upstream latency per request (default 50ms)")
	flag.Int64Var(&bwMB, "bandwidth-mb", 50, "upstream blob bandwidth per connection, MB/s")
	flag.DurationVar(&o.LoadDuration, "load-duration", 0, "length of each S2 measurement (default 5s)")
	flag.IntVar(&o.Clients, "clients", 50, "S2 concurrent clients")
	flag.IntVar(&o.ColdClients, "cold-clients", 20, "S3 concurrent clients")
	flag.Int64Var(&coldMB, "cold-mb", 100, "S3 blob size, MB")
	flag.Int64Var(&bigMiB, "big-mib", 1024, "S4 blob size, MiB")
	flag.Int64Var(&firstMiB, "first-mib", 256, "S4 first-read blobs' size, MiB (one fresh blob per client count and run)")
	flag.IntVar(&o.Pulls, "pulls", 360, "S6 sequential pulls")
	flag.DurationVar(&o.Window, "window", 0, "S2f freshness window (default 30s)")
	flag.DurationVar(&o.HangTimeout, "hang-timeout", 0, "S7: the client gives up after (default 40s)")
	flag.IntVar(&o.WarmClients, "warm-clients", 20, "S10 clients pulling the moved tag at once")
	flag.StringVar(&o.Dir, "dir", "", "work dir, kept afterwards (default a temp dir, removed)")
	flag.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios to run, of "+strings.Join(bench.Scenarios, ",")+
		" (default all); a subset is printed unless -out is given")
	var s9, s9Scales, s9Postgres string
	flag.StringVar(&s9, "s9", "", "run only S9, the scale scenario (see docs/performance.md), and write its tables to this file (- prints them)")
	flag.StringVar(&s9Scales, "s9-scales", "0,10000,100000", "S9: comma-separated numbers of blob references to seed (1000000 for the full curve)")
	flag.StringVar(&s9Postgres, "s9-postgres", "", "S9: URL of a PostgreSQL server to measure too (default $DPROXY_BENCH_POSTGRES); database "+
		"dproxy_s9 is created in it and dropped afterwards")
	flag.Parse()
	if s9 != "" {
		os.Exit(runScale(s9, s9Scales, s9Postgres, o))
	}
	if scenarios != "" {
		o.Scenarios = strings.Split(scenarios, ",")
		outSet := false
		flag.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
		if !outSet {
			out = "" // a subset must not replace the full table in the docs
		}
	}
	o.Bandwidth, o.ColdSize, o.BigSize, o.FirstSize = bwMB*1_000_000, coldMB*1_000_000, bigMiB<<20, firstMiB<<20
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, o)
	if res != nil {
		cmd := "dproxy-bench " + strings.Join(relative(os.Args[1:]), " ")
		section := res.Markdown(o, strings.TrimSpace(cmd))
		if err != nil {
			section = "**The run failed: " + err.Error() + "**\n\n" + section
		}
		if out == "" {
			fmt.Print(section)
		} else if werr := bench.WriteReport(out, section); werr != nil {
			fmt.Fprintln(os.Stderr, "dproxy-bench:", werr)
			os.Exit(1)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dproxy-bench:", err)
		os.Exit(1)
	}
}

// relative rewrites arguments under the working directory relative to it,
// so the report names no paths of this machine.
func relative(args []string) []string {
	wd, err := os.Getwd()
	if err != nil {
		return args
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, wd+string(os.PathSeparator), "")
	}
	return out
}

// runScale runs S9 alone and writes its section to out ("-": stdout).
func runScale(out, scales, postgres string, o bench.Options) int {
	so := bench.ScaleOptions{Dproxy: o.Dproxy, Dir: o.Dir, Postgres: postgres,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if so.Postgres == "" {
		so.Postgres = os.Getenv("DPROXY_BENCH_POSTGRES")
	}
	for _, f := range strings.Split(scales, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "dproxy-bench: -s9-scales: %q is not a number of blob references\n", f)
			return 2
		}
		so.Scales = append(so.Scales, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.RunScale(ctx, so)
	if res != nil {
		cmd := "dproxy-bench " + strings.Join(hideURL(relative(os.Args[1:])), " ")
		section := res.Markdown(strings.TrimSpace(cmd))
		if err != nil {
			section = "**The run failed: " + err.Error() + "**\n\n" + section
		}
		if out == "-" {
			fmt.Print(section)
		} else if werr := os.WriteFile(out, []byte(section), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "dproxy-bench:", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dproxy-bench:", err)
		return 1
	}
	return 0
}

// hideURL replaces the PostgreSQL URL of -s9-postgres, which may carry a
// password, with "URL" in a report's command line.
func hideURL(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		name := strings.TrimLeft(a, "-")
		switch {
		case name == "s9-postgres" && i+1 < len(out):
			out[i+1] = "URL"
		case strings.HasPrefix(name, "s9-postgres="):
			out[i] = "-s9-postgres=URL"
		}
	}
	return out
}
