package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// upstreamCounts records the upstream requests of a scenario.
func (r *run) upstreamCounts(scenario, target string, kinds ...string) {
	for _, k := range kinds {
		var method, kind string
		fmt.Sscan(k, &method, &kind)
		r.res.add(scenario, "upstream "+kind+" "+method+"s", target, float64(r.up.Count(method, kind)))
	}
}

// s1: a cold pull of a 5 × 1 MB image by one client.
func (r *run) s1(ctx context.Context, t *target, image string) error {
	r.up.ResetCounts()
	c := newClient(r.hc, t.base, t.repo(image, false), t.user, t.pass)
	start := time.Now()
	if _, err := c.pull(ctx, "v1"); err != nil {
		return err
	}
	r.res.add("S1", "wall (ms)", t.name, ms(time.Since(start)))
	r.upstreamCounts("S1", t.name, "GET token", "GET manifest", "HEAD manifest", "GET blob")
	return nil
}

// loadResult is what a closed-loop load measured.
type loadResult struct {
	requests  int
	elapsed   time.Duration
	manifests []time.Duration
	// serverCPU and clientCPU are the CPU time (user + system) the
	// target's process and this load generator used while the clock ran.
	serverCPU, clientCPU time.Duration
}

// load runs n clients pulling (or only GETting the manifest of) image:v1
// in a closed loop for the load duration. Every client pulls once before
// the clock starts, so tokens are fetched and caches are warm.
func (r *run) load(ctx context.Context, t *target, image string, fresh, manifestOnly bool) (loadResult, error) {
	n := r.opts.Clients
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = newClient(r.hc, t.base, t.repo(image, fresh), t.user, t.pass)
		if _, err := clients[i].pull(ctx, "v1"); err != nil {
			return loadResult{}, fmt.Errorf("warm-up pull: %w", err)
		}
		clients[i].requests = 0
	}
	r.up.ResetCounts()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lats := make([][]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	server0, client0 := processCPU(t.proc), selfCPU()
	start := time.Now()
	deadline := start.Add(r.opts.LoadDuration)
	for i, c := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				var lat time.Duration
				var err error
				if manifestOnly {
					s := time.Now()
					_, _, err = c.getManifest(lctx, "v1")
					lat = time.Since(s)
				} else {
					lat, err = c.pull(lctx, "v1")
				}
				if err != nil {
					errs[i] = err
					cancel()
					return
				}
				lats[i] = append(lats[i], lat)
			}
		})
	}
	wg.Wait()
	res := loadResult{elapsed: time.Since(start), serverCPU: processCPU(t.proc) - server0, clientCPU: selfCPU() - client0}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	for i, c := range clients {
		res.requests += c.requests
		res.manifests = append(res.manifests, lats[i]...)
	}
	return res, nil
}

// cpu records how many cores the server and the load generator kept busy
// during a load, and the server's CPU time per request: on a machine the
// two share, their sum near the core count means the load is CPU-bound.
func (r *run) cpu(scenario, target string, res loadResult) {
	secs := res.elapsed.Seconds()
	r.res.add(scenario, "server CPU (cores busy)", target, res.serverCPU.Seconds()/secs)
	r.res.add(scenario, "load generator CPU (cores busy)", target, res.clientCPU.Seconds()/secs)
	if res.requests > 0 {
		r.res.add(scenario, "server CPU per request (µs)", target, float64(res.serverCPU.Microseconds())/float64(res.requests))
	}
}

// percentile returns the p-th percentile (0 < p ≤ 100) of ds in ms.
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return ms(s[max(0, min(i, len(s)-1))])
}

// s2: warm pulls by many clients; every manifest GET revalidates.
func (r *run) s2(ctx context.Context, t *target, image string) error {
	res, err := r.load(ctx, t, image, false, false)
	if err != nil {
		return err
	}
	r.s2Load(t.name, res)
	r.res.add("S2", "upstream manifest HEADs per 1000 manifest requests", t.name,
		1000*float64(r.up.Count("HEAD", "manifest"))/float64(len(res.manifests)))
	r.upstreamCounts("S2", t.name, "GET manifest", "GET token")

	res, err = r.load(ctx, t, image, false, true)
	if err != nil {
		return err
	}
	r.res.add("S2m", "manifest requests/s, revalidating", t.name, float64(res.requests)/res.elapsed.Seconds())
	r.res.add("S2m", "manifest p99 (ms)", t.name, percentile(res.manifests, 99))
	return nil
}

// s2Reference runs S2's pull load against nginx serving the same manifest
// and blobs as static files (see publishStatic): no authorisation, no
// revalidation, the kernel's sendfile. It is the most this machine serves
// to this load generator, the ceiling for S2's figures.
func (r *run) s2Reference(ctx context.Context, image string) error {
	for _, ref := range []struct{ name, base string }{{NginxOn, r.nginxOn}, {NginxOff, r.nginxOf}} {
		t := &target{name: ref.name, base: ref.base, proc: r.nginx,
			repo: func(image string, _ bool) string { return staticRepo + image }}
		r.opts.Logger.Info("scenario", "scenario", "S2", "target", t.name)
		res, err := r.load(ctx, t, image, false, false)
		if err != nil {
			return fmt.Errorf("S2 on %s: %w", t.name, err)
		}
		r.s2Load(t.name, res)
	}
	for _, t := range []string{Dproxy, Distribution} {
		if v, ceiling := r.res.last("S2", s2Rate, t), r.res.last("S2", s2Rate, NginxOn); v > 0 && ceiling > 0 {
			r.res.add("S2", "requests/s as % of nginx sendfile on (same run)", t, 100*v/ceiling)
		}
	}
	return nil
}

// s2Load records what S2 measures of every server's load.
func (r *run) s2Load(target string, res loadResult) {
	r.res.add("S2", s2Rate, target, float64(res.requests)/res.elapsed.Seconds())
	r.res.add("S2", "manifest p50 (ms)", target, percentile(res.manifests, 50))
	r.res.add("S2", "manifest p99 (ms)", target, percentile(res.manifests, 99))
	r.cpu("S2", target, res)
}

// s2Rate is S2's main measure.
const s2Rate = "pull requests/s (manifest + 6 blobs per pull)"

// staticRepo is where publishStatic puts images in nginx's root.
const staticRepo = "static/"

// publishStatic writes img's manifest (as tag v1) and blobs under nginx's
// root at the paths a registry serves them, so S2's load runs against
// nginx unchanged.
func (r *run) publishStatic(image string, img v1.Image) error {
	base := filepath.Join(r.dir, "nginx", "www", "v2", staticRepo+image)
	cfg, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("config digest of %s: %w", image, err)
	}
	files := map[string]func() ([]byte, error){"manifests/v1": img.RawManifest, "blobs/" + cfg.String(): img.RawConfigFile}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("layers of %s: %w", image, err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("layer digest of %s: %w", image, err)
		}
		files["blobs/"+d.String()] = func() ([]byte, error) {
			rc, err := l.Compressed()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			return io.ReadAll(rc)
		}
	}
	for name, content := range files {
		b, err := content()
		if err != nil {
			return fmt.Errorf("read %s of %s: %w", name, image, err)
		}
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("publish %s: %w", image, err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("publish %s: %w", image, err)
		}
	}
	return nil
}

// s2f: manifest GETs by many clients within dproxy's freshness window.
// The peer has no such setting; it is measured as it is.
func (r *run) s2f(ctx context.Context, t *target, image string) error {
	res, err := r.load(ctx, t, image, true, true)
	if err != nil {
		return err
	}
	r.res.add("S2f", "manifest requests/s", t.name, float64(res.requests)/res.elapsed.Seconds())
	r.res.add("S2f", "manifest p99 (ms)", t.name, percentile(res.manifests, 99))
	r.upstreamCounts("S2f", t.name, "HEAD manifest")
	r.cpu("S2f", t.name, res)
	return nil
}

// s3: a cold blob pulled by many clients at once.
func (r *run) s3(ctx context.Context, t *target, image, digest string) error {
	r.up.ResetCounts()
	n := r.opts.ColdClients
	manifest := make([]time.Duration, n)
	ttfb := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			c := newClient(r.hc, t.base, t.repo(image, false), t.user, t.pass)
			s := time.Now()
			m, _, err := c.getManifest(ctx, "v1")
			manifest[i] = time.Since(s)
			if err != nil {
				errs[i] = err
				return
			}
			if len(m.Layers) != 1 || m.Layers[0].Digest != digest {
				errs[i] = fmt.Errorf("manifest of %s lists %v, want the one layer %s", image, m.Layers, digest)
				return
			}
			_, ttfb[i], errs[i] = c.getBlob(ctx, digest, true)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.res.add("S3", "wall (s)", t.name, wall.Seconds())
	r.res.add("S3", "upstream GETs of the blob", t.name, float64(r.up.CountBlob("GET", digest)))
	r.res.add("S3", "slowest manifest (ms)", t.name, ms(slices.Max(manifest)))
	r.res.add("S3", "slowest first blob byte (ms)", t.name, ms(slices.Max(ttfb)))
	return nil
}

// s4: the cached 1 GiB blob to 1 and 4 clients, beside nginx serving the
// same file. Each target's body is verified once before the timed reads;
// timed reads check the length only, so the client's hashing does not cap
// what is measured. The targets take turns, s4Rounds times, and each
// records the median of its rounds: a burst of the machine's other load
// then falls on all of them rather than on one.
func (r *run) s4(ctx context.Context, i int) error {
	if err := r.s4First(ctx, i); err != nil {
		return err
	}
	type ref struct {
		name  string
		c     func() *client
		path  string
		token string
		size  int64
		rates map[int][]float64 // clients → MB/s per round
	}
	refs := []*ref{
		{name: NginxOn, c: func() *client { return newClient(r.hc, r.nginxOn, "", "", "") }, path: "/blob"},
		{name: NginxOff, c: func() *client { return newClient(r.hc, r.nginxOf, "", "", "") }, path: "/blob"},
	}
	for _, t := range r.targets(i) {
		repo := t.repo("big", false)
		refs = append(refs, &ref{name: t.name, c: func() *client { return newClient(r.hc, t.base, repo, t.user, t.pass) }, path: "/v2/" + repo + "/blobs/" + r.big})
	}
	for _, rf := range refs {
		c := rf.c()
		size, _, err := c.getFile(ctx, rf.path, r.big, true)
		if err != nil {
			return fmt.Errorf("S4 on %s: %w", rf.name, err)
		}
		rf.token, rf.size, rf.rates = c.token, size, map[int][]float64{}
	}
	for range s4Rounds {
		for _, rf := range refs {
			for _, clients := range []int{1, 4} {
				rate, err := r.s4Read(ctx, clients, rf.c, rf.token, rf.path, rf.size)
				if err != nil {
					return fmt.Errorf("S4 on %s: %w", rf.name, err)
				}
				rf.rates[clients] = append(rf.rates[clients], rate)
			}
		}
	}
	for _, rf := range refs {
		for _, clients := range []int{1, 4} {
			r.res.add("S4", fmt.Sprintf("%d client(s), aggregate MB/s", clients), rf.name, median(rf.rates[clients]))
		}
	}
	for _, clients := range []int{1, 4} {
		ceiling := r.res.last("S4", fmt.Sprintf("%d client(s), aggregate MB/s", clients), NginxOn)
		for _, t := range []string{Dproxy, Distribution} {
			if v := r.res.last("S4", s4FirstRow(clients), t); v > 0 && ceiling > 0 {
				r.res.add("S4", fmt.Sprintf("first read, %d client(s), as %% of nginx sendfile on (same run)", clients), t, 100*v/ceiling)
			}
		}
	}
	return nil
}

func s4FirstRow(clients int) string {
	return fmt.Sprintf("first read after the fill, %d client(s), aggregate MB/s", clients)
}

// s4First measures the first reads of a blob just cached, as a CI fleet
// meets them: one job fills the cache, the next ones read it at once. For
// 1 and for 4 clients, a fresh blob of FirstSize is pulled once through
// each cache (the fill, with the upstream's latency and bandwidth limit
// lifted so it takes seconds), and the timed read that follows is the
// first the cache serves from storage: nothing reads it in between.
func (r *run) s4First(ctx context.Context, i int) error {
	for _, clients := range []int{1, 4} {
		image := fmt.Sprintf("first-r%d-c%d", i, clients)
		img, err := r.up.PushRandom("library/"+image, "v1", 1, r.opts.FirstSize)
		if err != nil {
			return err
		}
		layers, err := img.Layers()
		if err != nil {
			return fmt.Errorf("layers of the S4 first-read image: %w", err)
		}
		d, err := layers[0].Digest()
		if err != nil {
			return fmt.Errorf("digest of the S4 first-read blob: %w", err)
		}
		size, err := layers[0].Size()
		if err != nil {
			return fmt.Errorf("size of the S4 first-read blob: %w", err)
		}
		for _, t := range r.targets(i) {
			repo := t.repo(image, false)
			fill := newClient(r.hc, t.base, repo, t.user, t.pass)
			r.up.SetLatency(0)
			r.up.SetBandwidth(0)
			_, err := fill.pull(ctx, "v1")
			r.up.SetLatency(r.opts.Latency)
			r.up.SetBandwidth(r.opts.Bandwidth)
			if err != nil {
				return fmt.Errorf("S4 fill on %s: %w", t.name, err)
			}
			if t == r.dproxy {
				if err := r.waitCommitted(d.String()); err != nil {
					return err
				}
			}
			newC := func() *client { return newClient(r.hc, t.base, repo, t.user, t.pass) }
			rate, err := r.s4ReadBlob(ctx, clients, newC, fill.token, "/v2/"+repo+"/blobs/"+d.String(), d.String(), size)
			if err != nil {
				return fmt.Errorf("S4 first read on %s: %w", t.name, err)
			}
			r.res.add("S4", s4FirstRow(clients), t.name, rate)
		}
	}
	return nil
}

// s4Read has clients read the S4 blob at path at once and returns their
// aggregate MB/s.
func (r *run) s4Read(ctx context.Context, clients int, newC func() *client, token, path string, size int64) (float64, error) {
	return r.s4ReadBlob(ctx, clients, newC, token, path, r.big, size)
}

// s4ReadBlob has clients read blob d at path at once and returns their
// aggregate MB/s.
func (r *run) s4ReadBlob(ctx context.Context, clients int, newC func() *client, token, path, d string, size int64) (float64, error) {
	errs := make([]error, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for k := range clients {
		c := newC()
		c.token = token
		wg.Go(func() {
			n, _, err := c.getFile(ctx, path, d, false)
			if err == nil && n != size {
				err = fmt.Errorf("read %d of %d bytes", n, size)
			}
			errs[k] = err
		})
	}
	wg.Wait()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(clients) * float64(size) / el.Seconds() / 1e6, nil
}

// s4Rounds is how many times each S4 target is measured per run.
const s4Rounds = 3

// s6: sequential pulls of an unchanged tag.
func (r *run) s6(ctx context.Context, t *target, image string) error {
	c := newClient(r.hc, t.base, t.repo(image, false), t.user, t.pass)
	if _, err := c.pull(ctx, "v1"); err != nil {
		return err
	}
	r.up.ResetCounts()
	for range r.opts.Pulls {
		if _, err := c.pull(ctx, "v1"); err != nil {
			return err
		}
	}
	r.upstreamCounts("S6", t.name, "GET manifest", "HEAD manifest", "GET token")
	return nil
}

// s7Laters is how many pulls S7 times after the first one of an outage.
const s7Laters = 5

// s7: a cached tag while the upstream answers 503, refuses connections
// (closes them unanswered), and hangs.
func (r *run) s7(ctx context.Context, t *target, image string) error {
	for _, o := range []struct {
		name string
		set  func(bool)
	}{
		{"503", func(on bool) {
			if on {
				r.up.SetStatus(503)
			} else {
				r.up.SetStatus(0)
			}
		}},
		{"refused", r.up.SetDown},
	} {
		if err := r.s7Outage(ctx, t, image, o.name, o.set); err != nil {
			return err
		}
	}
	return r.s7Hang(ctx, t, image)
}

// s7Outage times the first GET of a cached tag once the upstream fails,
// and the median of the s7Laters GETs after it (the pulls of a fleet
// during the outage).
func (r *run) s7Outage(ctx context.Context, t *target, image, outage string, set func(bool)) error {
	c := newClient(r.hc, t.base, t.repo(image, false), t.user, t.pass)
	if _, err := c.pull(ctx, "v1"); err != nil {
		return err
	}
	set(true)
	start := time.Now()
	_, _, err := c.getManifest(ctx, "v1")
	first := time.Since(start)
	var laters []float64
	for range s7Laters {
		if err != nil {
			break
		}
		s := time.Now()
		_, _, err = c.getManifest(ctx, "v1")
		laters = append(laters, ms(time.Since(s)))
	}
	set(false)
	// An uncached tag is asked upstream; its answer (404) shows dproxy
	// that the upstream serves again before the next measurement.
	c.getManifest(ctx, "absent")
	ok := 1.0
	if err != nil {
		ok = 0
		r.opts.Logger.Info("S7 failed", "target", t.name, "outage", outage, "err", err)
	}
	r.res.add("S7", outage+": served the cached manifest (1 = yes)", t.name, ok)
	r.res.add("S7", outage+": first manifest (ms)", t.name, ms(first))
	if len(laters) > 0 {
		r.res.add("S7", fmt.Sprintf("%s: next %d manifests, median (ms)", outage, s7Laters), t.name, median(laters))
	}
	return nil
}

// s7Hang: a cached tag while the upstream hangs.
func (r *run) s7Hang(ctx context.Context, t *target, image string) error {
	c := newClient(r.hc, t.base, t.repo(image, false), t.user, t.pass)
	if _, err := c.pull(ctx, "v1"); err != nil {
		return err
	}
	r.up.SetHang(true)
	defer r.up.SetHang(false)
	hctx, cancel := context.WithTimeout(ctx, r.opts.HangTimeout)
	defer cancel()
	start := time.Now()
	_, _, err := c.getManifest(hctx, "v1")
	el := time.Since(start)
	r.res.add("S7", "hang: time to serve (s)", t.name, el.Seconds())
	ok := 1.0
	if err != nil {
		ok = 0
		r.opts.Logger.Info("S7 failed", "target", t.name, "after", el, "err", err)
	}
	r.res.add("S7", "hang: served the cached manifest (1 = yes)", t.name, ok)
	// An answered request closes dproxy's breaker for the next scenario.
	c.getManifest(ctx, "absent")
	return nil
}
