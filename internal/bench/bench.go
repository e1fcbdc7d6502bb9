// Package bench owns dproxy's end-to-end load benchmark: on loopback it
// starts a throttled, request-counting upstream registry
// (internal/testregistry), `dproxy serve`, CNCF Distribution in proxy mode
// as the peer and nginx as the physical reference, runs the scenarios of
// docs/performance.md against each, and renders a table of medians.
//
// It drives the processes it starts only through their public interfaces
// (HTTP, the data dir prepared through the store), stops each by its PID,
// and is imported only by cmd/dproxy-bench. It must not import server,
// cache, commands or tui.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// Options configure a bench run. Zero values take the defaults.
type Options struct {
	Dproxy   string // path of the dproxy binary (required)
	Registry string // path of CNCF Distribution's registry binary (required)
	Nginx    string // path of nginx (required)

	Runs         int           // repetitions of every scenario; default 3
	Latency      time.Duration // upstream latency per request; default 50ms
	Bandwidth    int64         // upstream blob bandwidth per connection, bytes/s; default 50 MB/s
	LoadDuration time.Duration // length of each S2 measurement; default 5s
	Clients      int           // S2 concurrent clients; default 50
	ColdClients  int           // S3 concurrent clients; default 20
	ColdSize     int64         // S3 blob size; default 100 MB
	BigSize      int64         // S4 blob size; default 1 GiB
	FirstSize    int64         // S4 first-read blobs' size; default 256 MiB
	Pulls        int           // S6 sequential pulls; default 360
	Window       time.Duration // S2f freshness window; default 30s
	HangTimeout  time.Duration // S7 client gives up after; default 40s
	WarmClients  int           // S8 clients pulling the moved tag at once; default 20
	Dir          string        // work dir; default a new temp dir, removed at the end
	Scenarios    []string      // the scenarios to run (see Scenarios); default all
	Logger       *slog.Logger
}

// Scenarios are the scenarios a run can be limited to, in the order they
// run. S2 includes S2m; S5 is recorded by every run; S8 (dproxy only)
// pulls with activity screens of `dproxy tui` attached; S10 pulls a moved
// tag, warm against not warm.
var Scenarios = []string{"S1", "S2", "S2f", "S3", "S6", "S7", "S8", "S10", "S4"}

// selected reports whether the run includes scenario s.
func (o *Options) selected(s string) bool {
	return len(o.Scenarios) == 0 || slices.Contains(o.Scenarios, s)
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Runs, 3)
	def(&o.Clients, 50)
	def(&o.ColdClients, 20)
	def(&o.Pulls, 360)
	def(&o.WarmClients, 20)
	defD(&o.Latency, 50*time.Millisecond)
	defD(&o.LoadDuration, 5*time.Second)
	defD(&o.Window, 30*time.Second)
	defD(&o.HangTimeout, 40*time.Second)
	if o.Bandwidth <= 0 {
		o.Bandwidth = 50_000_000
	}
	if o.ColdSize <= 0 {
		o.ColdSize = 100_000_000
	}
	if o.BigSize <= 0 {
		o.BigSize = 1 << 30
	}
	if o.FirstSize <= 0 {
		o.FirstSize = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Target names as they appear in the table.
const (
	Dproxy       = "dproxy"
	Distribution = "distribution"
	NginxOn      = "nginx sendfile on"
	NginxOff     = "nginx sendfile off"
)

// upstream credentials both caches use.
const hubUser, hubPass = "hub", "hub-secret"

// target is a registry under test.
type target struct {
	name       string
	base       string
	user, pass string
	proc       *process
	// repo maps an upstream image name ("s1-r1") to this registry's
	// repository path; fresh selects dproxy's group with a freshness window.
	repo func(image string, fresh bool) string
}

// run is the state of one bench run.
type run struct {
	opts    Options
	dir     string
	up      *testregistry.Upstream
	hc      *http.Client
	dproxy  *target
	peer    *target
	nginxOn string // base URLs of the references
	nginxOf string
	nginx   *process
	res     *Results
	big     string // digest of the S4 blob
	// watchToken is the S8 watchers' api token.
	watchToken string
	// dproxyMetrics is the base URL of dproxy's metrics listener.
	dproxyMetrics string
}

// Run starts everything, runs every scenario opts.Runs times and returns
// the results. Everything it started is stopped before it returns.
func Run(ctx context.Context, opts Options) (*Results, error) {
	opts.defaults()
	for _, s := range opts.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q: choose from %s", s, strings.Join(Scenarios, ", "))
		}
	}
	for _, b := range []struct{ flag, path string }{{"dproxy", opts.Dproxy}, {"registry", opts.Registry}, {"nginx", opts.Nginx}} {
		if b.path == "" {
			return nil, fmt.Errorf("no %s binary given: pass its path", b.flag)
		}
		if _, err := os.Stat(b.path); err != nil {
			return nil, fmt.Errorf("%s binary: %w", b.flag, err)
		}
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "dproxy-bench-")
		if err != nil {
			return nil, fmt.Errorf("create work dir: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	r := &run{
		opts: opts,
		dir:  dir,
		hc: &http.Client{Transport: &http.Transport{
			MaxIdleConns: 1000, MaxIdleConnsPerHost: 1000, IdleConnTimeout: time.Minute,
			DisableCompression: true,
		}},
		res: newResults(),
	}
	r.res.Env = describeMachine()
	r.up = testregistry.Start(testregistry.Options{Users: map[string]string{hubUser: hubPass}, RequireAuth: true})
	defer r.up.Close()
	defer r.stopAll()
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	r.res.Env["dproxy"] = versionOf(opts.Dproxy, "version")
	r.res.Env["distribution"] = versionOf(opts.Registry, "--version")
	r.res.Env["nginx"] = versionOf(opts.Nginx, "-v")
	if opts.selected("S4") {
		if err := r.prepareBig(ctx); err != nil {
			return nil, err
		}
	}
	r.up.SetLatency(opts.Latency)
	r.up.SetBandwidth(opts.Bandwidth)
	for i := 1; i <= opts.Runs; i++ {
		r.res.Env["load during run "+fmt.Sprint(i)] = loadAvg()
		if err := r.runOnce(ctx, i); err != nil {
			return r.res, fmt.Errorf("run %d: %w", i, err)
		}
	}
	for _, t := range []*target{r.dproxy, r.peer} {
		rss, err := t.proc.peakRSS()
		if err != nil {
			return r.res, err
		}
		r.res.add("S5", "peak RSS over the whole bench (MiB)", t.name, rss)
	}
	r.res.Env["load at the end"] = loadAvg()
	return r.res, nil
}

// start starts dproxy, Distribution and nginx.
func (r *run) start(ctx context.Context) error {
	o := r.opts
	// dproxy
	ddir := filepath.Join(r.dir, "dproxy")
	secret, err := prepareDproxy(ctx, ddir, o.Window, hubUser, hubPass)
	if err != nil {
		return err
	}
	if o.selected("S8") {
		if r.watchToken, err = prepareWatcher(ctx, ddir); err != nil {
			return err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	maddr, err := freeAddr()
	if err != nil {
		return err
	}
	r.dproxyMetrics = "http://" + maddr
	p, err := startProcess("dproxy", r.dir, nil, o.Dproxy, "serve", "--addr", addr, "--data-dir", ddir,
		"--upstream", r.up.URL, "--external-url", "http://"+addr, "--log-format", "json", "--metrics-addr", maddr)
	if err != nil {
		return err
	}
	r.dproxy = &target{name: Dproxy, base: "http://" + addr, user: dproxyUser, pass: secret, proc: p,
		repo: func(image string, fresh bool) string {
			g := "acme"
			if fresh {
				g = "fresh"
			}
			return g + "/dependency_proxy/containers/" + image
		}}
	if err := waitReady(ctx, p, r.dproxy.base+"/-/health"); err != nil {
		return err
	}

	// Distribution
	addr, err = freeAddr()
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(r.dir, "distribution.yml")
	cfg := distributionConfig(filepath.Join(r.dir, "distribution"), addr, r.up.URL, hubUser, hubPass)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write distribution config: %w", err)
	}
	p, err = startProcess("distribution", r.dir, []string{"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none"}, o.Registry, "serve", cfgPath)
	if err != nil {
		return err
	}
	r.peer = &target{name: Distribution, base: "http://" + addr, proc: p,
		repo: func(image string, _ bool) string { return "library/" + image }}
	if err := waitReady(ctx, p, r.peer.base+"/v2/"); err != nil {
		return err
	}

	// nginx
	ndir := filepath.Join(r.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(ndir, "www"), 0o755); err != nil {
		return fmt.Errorf("create nginx dir: %w", err)
	}
	on, err := freeAddr()
	if err != nil {
		return err
	}
	off, err := freeAddr()
	if err != nil {
		return err
	}
	ncfg := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(ncfg, []byte(nginxConfig(ndir, filepath.Join(ndir, "www"), on, off)), 0o600); err != nil {
		return fmt.Errorf("write nginx config: %w", err)
	}
	if r.nginx, err = startProcess("nginx", r.dir, nil, o.Nginx, "-p", ndir, "-c", ncfg); err != nil {
		return err
	}
	r.nginxOn, r.nginxOf = "http://"+on, "http://"+off
	if err := waitReady(ctx, r.nginx, r.nginxOn+"/"); err != nil {
		return err
	}
	return waitReady(ctx, r.nginx, r.nginxOf+"/")
}

func (r *run) stopAll() {
	for _, t := range []*target{r.dproxy, r.peer} {
		if t != nil {
			t.proc.stop()
		}
	}
	r.nginx.stop()
}

// prepareBig pushes the S4 blob, pulls it once through both caches at full
// speed (verifying it) and puts the same bytes where nginx serves them.
func (r *run) prepareBig(ctx context.Context) error {
	r.opts.Logger.Info("pushing the S4 blob", "bytes", r.opts.BigSize)
	img, err := r.up.PushRandom("library/big", "v1", 1, r.opts.BigSize)
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("layers of the S4 image: %w", err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		return fmt.Errorf("digest of the S4 blob: %w", err)
	}
	r.big = d.String()
	for _, t := range []*target{r.dproxy, r.peer} {
		c := newClient(r.hc, t.base, t.repo("big", false), t.user, t.pass)
		if _, err := c.pull(ctx, "v1"); err != nil {
			return fmt.Errorf("warm the S4 blob in %s: %w", t.name, err)
		}
	}
	if err := r.waitCommitted(r.big); err != nil {
		return err
	}
	return copyFile(r.dproxyBlob(r.big), filepath.Join(r.dir, "nginx", "www", "blob"))
}

// dproxyBlob is the path of blob d in dproxy's data dir.
func (r *run) dproxyBlob(d string) string {
	fs, err := blobstore.NewFS(config.Config{DataDir: filepath.Join(r.dir, "dproxy")}.BlobDir())
	if err != nil {
		return "" // waitCommitted then reports the blob as not committed
	}
	return fs.Path(oci.Digest(d))
}

// waitCommitted waits until dproxy committed blob d: it commits a
// download after the last byte reached its client.
func (r *run) waitCommitted(d string) error {
	src := r.dproxyBlob(d)
	for i := 0; ; i++ {
		if _, err := os.Stat(src); err == nil {
			return nil
		} else if i > 600 {
			return fmt.Errorf("blob %s was not committed by dproxy: %w", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

// targets returns the two caches, in an order that alternates by run.
func (r *run) targets(i int) []*target {
	if i%2 == 0 {
		return []*target{r.peer, r.dproxy}
	}
	return []*target{r.dproxy, r.peer}
}

func (r *run) runOnce(ctx context.Context, i int) error {
	log := r.opts.Logger
	small := fmt.Sprintf("s1-r%d", i)
	cold := fmt.Sprintf("s3-r%d", i)
	smallImg, err := r.up.PushRandom("library/"+small, "v1", 5, 1_000_000)
	if err != nil {
		return err
	}
	if err := r.publishStatic(small, smallImg); err != nil {
		return err
	}
	coldImg, err := r.up.PushRandom("library/"+cold, "v1", 1, r.opts.ColdSize)
	if err != nil {
		return err
	}
	coldLayers, err := coldImg.Layers()
	if err != nil {
		return fmt.Errorf("layers of the S3 image: %w", err)
	}
	coldDigest, err := coldLayers[0].Digest()
	if err != nil {
		return fmt.Errorf("digest of the S3 blob: %w", err)
	}
	steps := []struct {
		name string
		fn   func(*target) error
	}{
		{"S1", func(t *target) error { return r.s1(ctx, t, small) }},
		{"S2", func(t *target) error { return r.s2(ctx, t, small) }},
		{"S2f", func(t *target) error { return r.s2f(ctx, t, small) }},
		{"S3", func(t *target) error { return r.s3(ctx, t, cold, coldDigest.String()) }},
		{"S6", func(t *target) error { return r.s6(ctx, t, small) }},
		{"S7", func(t *target) error { return r.s7(ctx, t, small) }},
		{"S10", func(t *target) error { return r.s10(ctx, t) }},
	}
	for _, s := range steps {
		if !r.opts.selected(s.name) {
			continue
		}
		for _, t := range r.targets(i) {
			log.Info("scenario", "run", i, "scenario", s.name, "target", t.name)
			if err := s.fn(t); err != nil {
				return fmt.Errorf("%s on %s: %w", s.name, t.name, err)
			}
		}
		if s.name == "S2" {
			if err := r.s2Reference(ctx, small); err != nil {
				return err
			}
		}
	}
	if r.opts.selected("S8") {
		log.Info("scenario", "run", i, "scenario", "S8", "target", Dproxy)
		if err := r.s8(ctx, i); err != nil {
			return fmt.Errorf("S8 on dproxy: %w", err)
		}
	}
	if !r.opts.selected("S4") {
		return nil
	}
	log.Info("scenario", "run", i, "scenario", "S4")
	return r.s4(ctx, i)
}

// describeMachine records what the numbers were measured on.
func describeMachine() map[string]string {
	env := map[string]string{}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				env["cpu"] = strings.TrimSpace(v)
				n++
			}
		}
		env["cpus"] = fmt.Sprint(n)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		env["memory"] = strings.Join(strings.Fields(strings.TrimPrefix(first, "MemTotal:")), " ")
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		env["os"] = "Debian " + strings.TrimSpace(string(b))
	}
	env["load at the start"] = loadAvg()
	return env
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// versionOf runs a binary's version command and returns its first line.
func versionOf(bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := execOutput(ctx, bin, args...)
	if err != nil && out == "" {
		return "unknown (" + err.Error() + ")"
	}
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return strings.ReplaceAll(first, bin, filepath.Base(bin)) // no paths of this machine in the report
}

var errNoOutput = errors.New("no output")

func execOutput(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if len(out) == 0 && err == nil {
		err = errNoOutput
	}
	return string(out), err
}
