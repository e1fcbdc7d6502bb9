package commands_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/dproxy/dproxy/internal/commands"
	"github.com/dproxy/dproxy/internal/testregistry"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"dproxy": func() { os.Exit(commands.Main()) },
	})
}

// Docker Hub credentials the test upstream accepts.
const (
	hubUser   = "hubuser"
	hubSecret = "hub-secret-do-not-log"
)

// TestScripts runs each testdata/script/*.txtar against its own real
// `dproxy serve` process (temp data dir, SQLite) in front of a real
// registry upstream. The scripts drive the built CLI with `exec dproxy …`; the
// server's URL is $DPROXY_SERVER, its data dir $DPROXY_DATA_DIR (so the CLI
// finds the initial admin token there, also as $SERVER_DATA_DIR), its
// host:port $HOST; the upstream is $UPSTREAM, and $UPSTREAM_OPEN the same
// registry without authentication.
func TestScripts(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/script/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			t.Parallel()
			up := testregistry.New(t, testregistry.Options{Users: map[string]string{hubUser: hubSecret}})
			srv := serve(t, up)
			testscript.Run(t, testscript.Params{
				Files:               []string{file},
				RequireExplicitExec: true,
				Setup: func(env *testscript.Env) error {
					env.Setenv("DPROXY_SERVER", srv.URL)
					env.Setenv("DPROXY_DATA_DIR", srv.DataDir)
					env.Setenv("SERVER_DATA_DIR", srv.DataDir)
					env.Setenv("HOST", srv.Host)
					env.Setenv("HUB_USER", hubUser)
					env.Setenv("HUB_SECRET", hubSecret)
					env.Setenv("UPSTREAM", up.URL)
					env.Setenv("UPSTREAM_OPEN", up.PushURL()) // the same registry without authentication
					env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
					env.Setenv("HOME", env.WorkDir)
					return nil
				},
				Cmds: scriptCmds(t, srv),
			})
		})
	}
}

// server is a `dproxy serve` child process: this test binary under the
// name dproxy (testscript.Main runs the CLI then).
type server struct {
	URL, Host, DataDir string
	bin                string // this test binary as dproxy
	Upstream           *testregistry.Upstream
	log                string // path of its log (debug level)
}

// serve starts `dproxy serve` on a free port of 127.0.0.1 with a temp data
// dir in front of up, with args after the default flags (a flag given
// again there wins); it is stopped by PID when the test ends.
func serve(t *testing.T, up *testregistry.Upstream, args ...string) *server {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dproxy")
	if err := os.Symlink(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	// A free port may be taken between picking and binding it: then the
	// child exits saying so, and another port is tried.
	for attempt := 1; ; attempt++ {
		s, err := startServe(t, bin, up, args)
		if err == nil {
			return s
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

// startServe starts `dproxy serve` on a port that was free a moment ago
// and waits until it is ready, or exits.
func startServe(t *testing.T, bin string, up *testregistry.Upstream, args []string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &server{URL: "http://" + addr, Host: addr, DataDir: t.TempDir(), bin: bin, Upstream: up, log: filepath.Join(t.TempDir(), "serve.log")}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	// The scripts' virtual registries pull from the test upstream on
	// 127.0.0.1, which the address policy refuses unless allowed.
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr, "--data-dir", s.DataDir, "--upstream", up.URL,
		"--external-url", s.URL, "--log-level", "debug", "--log-format", "text", "--upstream-allow-cidr", "127.0.0.1/32"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		logf.Close()
	})
	deadline := time.Now().Add(time.Minute)
	for {
		// Ready only once its own log says it listens: an answer on the
		// port could come from whoever took it.
		if strings.Contains(s.Logs(), "msg=\"dproxy listening\"") {
			res, err := http.Get(s.URL + "/-/readiness")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return s, nil
				}
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("dproxy serve on %s exited:\n%s", addr, s.Logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dproxy serve did not become ready:\n%s", s.Logs())
		}
	}
}

// Logs returns what the server logged so far.
func (s *server) Logs() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// waitDownloads waits until the server has no blob download in flight
// (its dproxy_inflight_downloads gauge is 0): clients get a blob's bytes
// while it downloads, and the cache records it just after.
func (s *server) waitDownloads(ts *testscript.TestScript) {
	s.waitMetric(ts, "dproxy_inflight_downloads 0")
}

// waitMetric waits until the server's /metrics has line, for at most a
// minute.
func (s *server) waitMetric(ts *testscript.TestScript, line string) {
	deadline := time.Now().Add(time.Minute)
	for {
		tok, err := os.ReadFile(filepath.Join(s.DataDir, "initial_admin_token"))
		if err != nil {
			ts.Fatalf("read the initial admin token: %v", err)
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			ts.Fatalf("read metrics: %v", err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(b), "\n"+line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("/metrics has no line %q after a minute", line)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scriptCmds are the scripts' commands beyond the CLI: they act on the
// upstream and pull through the proxy like a registry client.
func scriptCmds(t *testing.T, srv *server) map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	up := srv.Upstream
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		// push-image REPO TAG [LAYERS BYTES]: push a random image upstream,
		// of two layers of 2048 bytes unless given.
		"push-image": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 2 && len(args) != 4 {
				ts.Fatalf("usage: push-image REPO TAG [LAYERS BYTES]")
			}
			layers, size := 2, int64(2048)
			if len(args) == 4 {
				n, err1 := strconv.Atoi(args[2])
				b, err2 := strconv.ParseInt(args[3], 10, 64)
				if err1 != nil || err2 != nil || n < 1 || b < 1 {
					ts.Fatalf("push-image: want a number of layers and of bytes, got %q", args[2:])
				}
				layers, size = n, b
			}
			up.PushRandomImage(t, args[0], args[1], layers, size)
		},
		// pull REF [USER PASSWORD]: pull a manifest and its layers through
		// dproxy (REF without the host); PASSWORD @FILE reads it from FILE.
		// The error goes to stderr.
		"pull": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 1 && len(args) != 3 {
				ts.Fatalf("usage: pull REF [USER PASSWORD]")
			}
			var auth authn.Authenticator = authn.Anonymous
			if len(args) == 3 {
				pw := args[2]
				if f, ok := strings.CutPrefix(pw, "@"); ok {
					pw = strings.TrimSpace(ts.ReadFile(f))
				}
				auth = &authn.Basic{Username: args[1], Password: pw}
			}
			err := pullImage(srv.Host+"/"+args[0], auth)
			srv.waitDownloads(ts)
			if err != nil {
				fmt.Fprintln(ts.Stderr(), err)
			}
			switch {
			case err != nil && !neg:
				ts.Fatalf("pull %s: %v", args[0], err)
			case err == nil && neg:
				ts.Fatalf("pull %s succeeded, want a failure", args[0])
			}
		},
		// upstream-token-users: print the Basic usernames the upstream's
		// token service saw, one a line ("-" for anonymous).
		"upstream-token-users": func(ts *testscript.TestScript, neg bool, args []string) {
			for _, r := range up.TokenRequests() {
				u := r.Username
				if u == "" {
					u = "-"
				}
				fmt.Fprintln(ts.Stdout(), u)
			}
		},
		// upstream-manifest-gets: print how many manifest GETs the upstream
		// answered; upstream-reset zeroes the counters.
		"upstream-manifest-gets": func(ts *testscript.TestScript, neg bool, args []string) {
			fmt.Fprintln(ts.Stdout(), strconv.Itoa(up.Count("GET", testregistry.KindManifest)))
		},
		"upstream-reset": func(ts *testscript.TestScript, neg bool, args []string) {
			up.ResetCounts()
		},
		// wait-metric LINE: wait until the server's /metrics has LINE (a
		// whole line, such as a counter at a value), for at most a minute.
		"wait-metric": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 1 {
				ts.Fatalf("usage: wait-metric LINE")
			}
			srv.waitMetric(ts, args[0])
		},
		// upstream-down on|off: the upstream drops every connection, or
		// answers again.
		"upstream-down": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
				ts.Fatalf("usage: upstream-down on|off")
			}
			up.SetDown(args[0] == "on")
		},
		// upstream-ratelimit LIMIT REMAINING: the upstream sends Docker
		// Hub's rate-limit headers ("LIMIT;w=21600"); 0 0 removes them.
		"upstream-ratelimit": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 2 {
				ts.Fatalf("usage: upstream-ratelimit LIMIT REMAINING")
			}
			limit, err1 := strconv.Atoi(args[0])
			remaining, err2 := strconv.Atoi(args[1])
			if err1 != nil || err2 != nil {
				ts.Fatalf("upstream-ratelimit: want two numbers, got %q", args)
			}
			up.SetRateLimit(limit, remaining)
		},
		// exit-status N PROG [ARGS...]: run PROG (output to stdout/stderr as
		// exec does) and require exit status N.
		"exit-status": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) < 2 {
				ts.Fatalf("usage: exit-status N PROG [ARGS...]")
			}
			want, err := strconv.Atoi(args[0])
			if err != nil {
				ts.Fatalf("exit-status: %q is not a number", args[0])
			}
			got := 0
			if err := ts.Exec(args[1], args[2:]...); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					ts.Fatalf("run %s: %v", args[1], err)
				}
				got = ee.ExitCode()
			}
			if got != want {
				ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
			}
		},
		// json FILE [KEY=VALUE ...]: FILE must parse as JSON; with KEY=VALUE
		// pairs it must be an object (or an array whose first element is
		// one) with those top-level string or number values.
		"json": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) < 1 {
				ts.Fatalf("usage: json FILE [KEY=VALUE ...]")
			}
			obj := jsonObject(ts, args[0])
			for _, kv := range args[1:] {
				k, want, _ := strings.Cut(kv, "=")
				got := fmt.Sprint(obj[k])
				if (got == want) == neg {
					ts.Fatalf("%s: %s = %q, want %q (negated: %v)", args[0], k, got, want, neg)
				}
			}
		},
		// json-env FILE KEY VAR: sets VAR to the top-level KEY of the JSON
		// object in FILE (or of the first element of an array).
		"json-env": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 3 || neg {
				ts.Fatalf("usage: json-env FILE KEY VAR")
			}
			obj := jsonObject(ts, args[0])
			got, ok := obj[args[1]]
			if !ok {
				ts.Fatalf("%s has no %s", args[0], args[1])
			}
			ts.Setenv(args[2], fmt.Sprint(got))
		},
		// server-log-contains TEXT: whether the server's log has TEXT.
		"server-log-contains": func(ts *testscript.TestScript, neg bool, args []string) {
			if len(args) != 1 {
				ts.Fatalf("usage: server-log-contains TEXT")
			}
			if strings.Contains(srv.Logs(), args[0]) == neg {
				ts.Fatalf("server log contains %q: %v, want %v", args[0], !neg, neg)
			}
		},
	}
}

// jsonObject parses FILE as JSON and returns it as an object, or its
// first element when it is an array (nil when it is neither).
func jsonObject(ts *testscript.TestScript, file string) map[string]any {
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile(file)), &v); err != nil {
		ts.Fatalf("%s is not JSON: %v", file, err)
	}
	if arr, ok := v.([]any); ok && len(arr) > 0 {
		v = arr[0]
	}
	obj, _ := v.(map[string]any)
	return obj
}

func pullImage(ref string, auth authn.Authenticator) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(r, remote.WithAuth(auth))
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
