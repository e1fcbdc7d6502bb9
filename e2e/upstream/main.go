// Command upstream runs the end-to-end suite's Docker-Hub-like upstream
// registry as a process (internal/testregistry: a real registry behind a
// Docker v2 token service) and a small control server reporting the
// upstream's request counts, so the suite can check that a warm cache
// makes no upstream blob fetch.
//
// It listens only on 127.0.0.1, writes its addresses to the -env file as
// shell assignments once it serves, and runs until SIGINT or SIGTERM.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dproxy/dproxy/internal/testregistry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func run() error {
	envFile := flag.String("env", "", "write UPSTREAM_URL, UPSTREAM_PUSH and UPSTREAM_CONTROL to this file once serving (required)")
	users := flag.String("users", "", "comma-separated user:password pairs the token service accepts besides anonymous requests")
	flag.Parse()
	if *envFile == "" {
		return fmt.Errorf("-env FILE is required")
	}
	opts := testregistry.Options{Users: map[string]string{}}
	for _, pair := range strings.Split(*users, ",") {
		if pair == "" {
			continue
		}
		u, p, ok := strings.Cut(pair, ":")
		if !ok || u == "" || p == "" {
			return fmt.Errorf("-users: %q is not user:password", pair)
		}
		opts.Users[u] = p
	}

	up := testregistry.Start(opts)
	defer up.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the control server: %w", err)
	}
	mux := http.NewServeMux()
	// GET /-/counts: {"GET blob": 3, "HEAD manifest": 5, ...}
	mux.HandleFunc("GET /-/counts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(up.Counts())
	})
	// POST /-/reset zeroes the counts.
	mux.HandleFunc("POST /-/reset", func(w http.ResponseWriter, r *http.Request) {
		up.ResetCounts()
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	env := fmt.Sprintf("UPSTREAM_URL=%s\nUPSTREAM_PUSH=%s\nUPSTREAM_CONTROL=http://%s\n", up.URL, up.PushURL(), ln.Addr())
	tmp := *envFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(env), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, *envFile); err != nil {
		return fmt.Errorf("write %s: %w", *envFile, err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}
