package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// S10: a tag moves upstream (new layers), then WarmClients clients pull it
// at once. Not warm, the first of them spends the manifest GET and every
// client waits for the shared layer downloads; warm, dproxy's warmer
// (group warm, checking its entry every second) has fetched the new
// manifest and layers before the clients come, so they cost one HEAD.
// The peer, with no prewarming, is measured not warm.

// Images of S10: the one group acme pulls (never watched) and the one the
// group warm keeps warm (entry s10w:v, every 1s, seeded by prepareDproxy).
const (
	s10Cold   = "s10c"
	s10Warmed = "s10w"
	s10Tag    = "v"
)

// s10Layers are the layers of each version of the S10 images.
const (
	s10Layers    = 3
	s10LayerSize = 4_000_000
)

// s10 measures target t; for dproxy both groups, for the peer not warm.
func (r *run) s10(ctx context.Context, t *target) error {
	if err := r.s10Pull(ctx, t, s10Cold, "not warm", t.repo(s10Cold, false)); err != nil {
		return err
	}
	if t != r.dproxy {
		return nil
	}
	return r.s10Pull(ctx, t, s10Warmed, "warm", "warm/dependency_proxy/containers/"+s10Warmed)
}

// s10Pull moves image:v upstream (the previous version is cached through
// repo) and, once warm work (if any) is done, has the clients pull it.
func (r *run) s10Pull(ctx context.Context, t *target, image, label, repo string) error {
	n := r.opts.WarmClients
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = newClient(r.hc, t.base, repo, t.user, t.pass)
	}
	// The version before the move, cached through the target.
	if _, err := r.up.PushRandom("library/"+image, s10Tag, 1, 1000); err != nil {
		return err
	}
	if _, err := clients[0].pull(ctx, s10Tag); err != nil {
		return fmt.Errorf("pull the version before the move: %w", err)
	}
	img, err := r.up.PushRandom("library/"+image, s10Tag, s10Layers, s10LayerSize)
	if err != nil {
		return err
	}
	if label == "warm" {
		if err := r.waitWarmed(ctx, img); err != nil {
			return err
		}
	}
	r.up.ResetCounts()
	lats := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			s := time.Now()
			_, errs[i] = c.pull(ctx, s10Tag)
			lats[i] = time.Since(s)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("S10 %s pull: %w", label, err)
		}
	}
	slices.Sort(lats)
	r.res.add("S10", label+": pull p50 (ms)", t.name, ms(lats[n/2]))
	r.res.add("S10", label+": slowest pull (ms)", t.name, ms(lats[n-1]))
	r.res.add("S10", label+": wall (ms)", t.name, ms(wall))
	r.res.add("S10", label+": upstream manifest GETs at pull time", t.name, float64(r.up.Count("GET", "manifest")))
	r.res.add("S10", label+": upstream blob GETs at pull time", t.name, float64(r.up.Count("GET", "blob")))
	return nil
}

// waitWarmed waits until dproxy's warmer has fetched every blob of img
// from the upstream and committed it (no download in flight).
func (r *run) waitWarmed(ctx context.Context, img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("layers of the S10 image: %w", err)
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("config of the S10 image: %w", err)
	}
	digests := []string{cfg.String()}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		digests = append(digests, d.String())
	}
	deadline := time.Now().Add(time.Minute)
	for {
		fetched := true
		for _, d := range digests {
			fetched = fetched && r.up.CountBlob("GET", d) > 0
		}
		if fetched && r.dproxyIdle(ctx) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the warmer did not fetch the moved S10 tag within a minute")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dproxyIdle reports whether dproxy has no blob download in flight, from
// its metrics listener.
func (r *run) dproxyIdle(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.dproxyMetrics+"/metrics", nil)
	if err != nil {
		return false
	}
	res, err := r.hc.Do(req)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return err == nil && strings.Contains(string(b), "\ndproxy_inflight_downloads 0\n")
}
