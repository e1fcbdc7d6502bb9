package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// S8: pulls with `dproxy tui --activity` attached. The same loads run on
// dproxy without and then with watchers that ask what the activity screen
// asks, in one request a refresh (the header's figures and rate limits,
// the downloads in flight, the pulls since the last refresh): S2's warm
// load and S3's cold pull. The peer has no such screen.

// Watchers and their refresh period in S8: ten screens at their default
// 500 ms, and as many again asking as fast as they are answered.
const (
	s8Watchers = 10
	s8Every    = 500 * time.Millisecond
	s8Eager    = 10
)

// prepareWatcher creates a token with the api scope for the bench user (a
// guest of the groups the loads pull through), for S8's watchers.
func prepareWatcher(ctx context.Context, dataDir string) (string, error) {
	cfg := config.Default()
	cfg.DataDir = dataDir
	key, err := secretbox.LoadOrCreateKey(cfg.SecretKeyPath())
	if err != nil {
		return "", fmt.Errorf("prepare the S8 watcher: %w", err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		return "", fmt.Errorf("prepare the S8 watcher: %w", err)
	}
	st, err := store.OpenSQLite(ctx, cfg.DBPath(), box)
	if err != nil {
		return "", fmt.Errorf("prepare the S8 watcher: %w", err)
	}
	defer st.Close()
	adm := admin.New(st, nil, auth.NewService(st, nil, auth.ServiceOptions{}), admin.Options{})
	user := dproxyUser
	_, secret, err := adm.CreateToken(ctx, admin.System, admin.TokenInput{Kind: admin.TokenPersonal, Name: "bench-tui", Username: &user,
		Scopes: []string{auth.ScopeAPI}})
	if err != nil {
		return "", fmt.Errorf("prepare the S8 watcher: %w", err)
	}
	return secret, nil
}

// watchers are activity screens refreshing until stopped.
type watchers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	lats   []time.Duration // one a refresh
	errs   []error
	start  time.Time
	seen   int // downloads in flight seen, over all refreshes
}

// watch starts n screens refreshing every period (0: as fast as answered).
func (r *run) watch(ctx context.Context, n int, every time.Duration) (*watchers, error) {
	api, err := adminclient.New(r.dproxy.base, r.watchToken, adminclient.Options{HTTPClient: r.hc})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &watchers{cancel: cancel, start: time.Now()}
	for range n {
		w.wg.Go(func() {
			var after adminclient.Seq
			for ctx.Err() == nil {
				s := time.Now()
				seen, err := refreshActivity(ctx, api, &after)
				lat := time.Since(s)
				w.mu.Lock()
				if err != nil && ctx.Err() == nil {
					w.errs = append(w.errs, err)
				} else if err == nil {
					w.lats = append(w.lats, lat)
					w.seen += seen
				}
				w.mu.Unlock()
				if err != nil {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(every - lat):
				}
			}
		})
	}
	return w, nil
}

// refreshActivity asks what one refresh of the activity screen asks: the
// pulls after *after, which it moves to the newest.
func refreshActivity(ctx context.Context, api *adminclient.Client, after *adminclient.Seq) (downloads int, err error) {
	snap, err := api.ActivitySnapshot(ctx, 300, *after)
	if err != nil {
		return 0, err
	}
	if len(snap.Pulls) > 0 {
		*after = snap.Pulls[0].Seq
	}
	return len(snap.Downloads), nil
}

// stop ends the screens and returns their refreshes per second, their
// latencies and the downloads in flight they saw.
func (w *watchers) stop() (perSec float64, lats []time.Duration, seen int, err error) {
	w.cancel()
	w.wg.Wait()
	return float64(len(w.lats)) / time.Since(w.start).Seconds(), w.lats, w.seen, errors.Join(w.errs...)
}

// coldPull has ColdClients clients fetch the manifest and then the one
// cold blob of image, at once, and returns the wall time.
func (r *run) coldPull(ctx context.Context, t *target, image, digest string) (time.Duration, error) {
	n := r.opts.ColdClients
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			c := newClient(r.hc, t.base, t.repo(image, false), t.user, t.pass)
			if _, _, err := c.getManifest(ctx, "v1"); err != nil {
				errs[i] = err
				return
			}
			_, _, errs[i] = c.getBlob(ctx, digest, true)
		})
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// s8 runs the loads on dproxy without and with activity screens watching.
func (r *run) s8(ctx context.Context, i int) error {
	t := r.dproxy
	small := fmt.Sprintf("s8-r%d", i)
	if _, err := r.up.PushRandom("library/"+small, "v1", 5, 1_000_000); err != nil {
		return err
	}
	var cold [2]string
	for j := range cold {
		img, err := r.up.PushRandom(fmt.Sprintf("library/s8-cold%d-r%d", j, i), "v1", 1, r.opts.ColdSize)
		if err != nil {
			return err
		}
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		d, err := layers[0].Digest()
		if err != nil {
			return err
		}
		cold[j] = d.String()
	}
	const none, with, eager = "no screen", "10 activity screens (500 ms)", "10 at 500 ms + 10 back to back"
	for j, mode := range []string{none, with, eager} {
		var w, e *watchers
		var err error
		if mode != none {
			if w, err = r.watch(ctx, s8Watchers, s8Every); err != nil {
				return err
			}
		}
		if mode == eager {
			if e, err = r.watch(ctx, s8Eager, 0); err != nil {
				return err
			}
		}
		res, lerr := r.load(ctx, t, small, false, false)
		var wall time.Duration
		if lerr == nil && j < len(cold) {
			wall, lerr = r.coldPull(ctx, t, fmt.Sprintf("s8-cold%d-r%d", j, i), cold[j])
		}
		for _, ws := range []*watchers{w, e} {
			if ws == nil {
				continue
			}
			perSec, lats, seen, werr := ws.stop()
			if werr != nil {
				return fmt.Errorf("S8 activity screens: %w", werr)
			}
			label := "activity screen"
			if ws == e {
				label = "back-to-back screen"
			}
			r.res.add("S8", label+" refreshes/s ("+mode+")", t.name, perSec)
			r.res.add("S8", label+" refresh p99 (ms) ("+mode+")", t.name, percentile(lats, 99))
			if ws == w && j < len(cold) {
				r.res.add("S8", "downloads in flight seen by the screens ("+mode+")", t.name, float64(seen))
			}
		}
		if lerr != nil {
			return lerr
		}
		r.res.add("S8", "pull requests/s ("+mode+")", t.name, float64(res.requests)/res.elapsed.Seconds())
		r.res.add("S8", "manifest p99 (ms) ("+mode+")", t.name, percentile(res.manifests, 99))
		if j < len(cold) {
			r.res.add("S8", "cold 100 MB blob to 20 clients, wall (s) ("+mode+")", t.name, wall.Seconds())
		}
	}
	return nil
}
