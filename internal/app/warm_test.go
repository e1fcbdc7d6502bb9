package app_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/app"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
	"github.com/dproxy/dproxy/internal/warm"
)

// warmRuns records the warmer's runs on one server.
type warmRuns struct {
	mu   sync.Mutex
	runs []warm.Run
}

func (w *warmRuns) record(r warm.Run) {
	w.mu.Lock()
	w.runs = append(w.runs, r)
	w.mu.Unlock()
}

// count is the number of runs so far for which match holds.
func (w *warmRuns) count(match func(warm.Run) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range w.runs {
		if match(r) {
			n++
		}
	}
	return n
}

func (w *warmRuns) total() int { return w.count(func(warm.Run) bool { return true }) }

// warmEnv is a server whose warmer runs, looking at its entries at least
// every 50 ms.
func warmEnv(t *testing.T, o envOptions) (*env, *warmRuns) {
	t.Helper()
	runs := &warmRuns{}
	configure := o.configure
	o.configure = func(cfg *config.Config) {
		cfg.WarmPoll = 50 * time.Millisecond
		if configure != nil {
			configure(cfg)
		}
	}
	o.appOptions = append(o.appOptions, app.WithWarmRuns(runs.record))
	e := newEnv(t, o)
	return e, runs
}

// startWarmer runs the server's warmer until the returned stop is called
// (at the latest when the test ends, before the server closes).
func startWarmer(t *testing.T, e *env) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.app.Warmer.Run(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// warmEntry returns the group's entry of ref.
func warmEntry(t *testing.T, e *env, group, ref string) admin.WarmEntry {
	t.Helper()
	es, _, err := e.app.Admin.WarmEntries(context.Background(), admin.System, group)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range es {
		if x.Ref() == ref {
			return x
		}
	}
	t.Fatalf("group %s has no warm entry %s (has %v)", group, ref, es)
	return admin.WarmEntry{}
}

// A tag moves upstream; within its interval the warmer fetches the new
// manifest and layers, and a client's pull then costs no upstream GET.
func TestWarmedTagCostsNoUpstreamGET(t *testing.T) {
	t.Parallel()
	e, runs := warmEnv(t, envOptions{})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	opts := pullOpts("alice", tok)
	ctx := context.Background()
	e.up.PushRandomImage(t, "library/node", "20", 2, 8<<10)
	ref := e.ref("acme", "node:20")
	pullAll(t, ref, opts)
	e.settle()

	if _, err := e.app.Admin.AddWarmEntries(ctx, admin.System, "acme", []string{"node:20"}, admin.WarmInput{Every: time.Second}); err != nil {
		t.Fatal(err)
	}
	startWarmer(t, e)
	waitFor(t, "the first check of node:20", func() bool { return warmEntry(t, e, "acme", "node:20").CheckedAt != nil })
	if got := warmEntry(t, e, "acme", "node:20"); got.State != store.WarmCurrent {
		t.Errorf("first check of a cached tag: state %s (%s), want %s", got.State, got.Message, store.WarmCurrent)
	}

	moved := e.up.PushRandomImage(t, "library/node", "20", 3, 8<<10)
	want, _ := moved.Digest()
	waitFor(t, "a warm run that fetches the moved tag", func() bool {
		return runs.count(func(r warm.Run) bool { return r.Moved > 0 }) > 0
	})
	got := warmEntry(t, e, "acme", "node:20")
	if got.State != store.WarmWarmed || got.Digest != want.String() {
		t.Errorf("after the move: state %s digest %s (%s), want %s %s", got.State, got.Digest, got.Message, store.WarmWarmed, want)
	}

	e.up.ResetCounts()
	img := pullAll(t, ref, opts)
	if d, _ := img.Digest(); d != want {
		t.Fatalf("pulled %s, want the moved tag's %s", d, want)
	}
	for _, c := range []struct {
		method, kind string
		want         int
	}{{"GET", "manifest", 0}, {"GET", "blob", 0}, {"HEAD", "manifest", 1}} {
		if n := e.up.Count(c.method, c.kind); n != c.want {
			t.Errorf("pull after warming: %d upstream %s %s, want %d", n, c.method, c.kind, c.want)
		}
	}
	if exp := metricsText(t, e); !strings.Contains(exp, "dproxy_warm_hits_total 1\n") {
		t.Errorf("/metrics lacks dproxy_warm_hits_total 1")
	}
}

// With the credential's remaining pulls at or below the reserve (the
// rate-limit reserve plus the warm reserve), the warmer sees the tag move
// with its HEAD but spends no pull; above it, it fetches.
func TestWarmKeepsTheReserve(t *testing.T) {
	t.Parallel()
	e, runs := warmEnv(t, envOptions{})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	ctx := context.Background()
	e.up.PushRandomImage(t, "library/python", "3.12", 1, 4<<10)
	pullAll(t, e.ref("acme", "python:3.12"), pullOpts("alice", tok))
	e.settle()
	// Reserve: 10 (ratelimit-reserve) + 20% of 100 = 30.
	e.up.SetRateLimit(100, 30)
	if _, err := e.app.Admin.AddWarmEntries(ctx, admin.System, "acme", []string{"python:3.12"}, admin.WarmInput{Every: time.Second}); err != nil {
		t.Fatal(err)
	}
	startWarmer(t, e)
	waitFor(t, "the first check", func() bool { return warmEntry(t, e, "acme", "python:3.12").CheckedAt != nil })

	e.up.PushRandomImage(t, "library/python", "3.12", 1, 4<<10)
	e.up.ResetCounts()
	waitFor(t, "a check that sees the move", func() bool { return warmEntry(t, e, "acme", "python:3.12").State == store.WarmReserve })
	if n := e.up.Count("GET", "manifest"); n != 0 {
		t.Errorf("budget at the reserve: the warmer made %d manifest GETs, want 0", n)
	}
	if n := e.up.Count("GET", "blob"); n != 0 {
		t.Errorf("budget at the reserve: the warmer made %d blob GETs, want 0", n)
	}
	if n := runs.count(func(r warm.Run) bool { return r.Pulls > 0 }); n != 0 {
		t.Errorf("%d warm runs spent pulls below the reserve", n)
	}

	e.up.SetRateLimit(100, 31)
	waitFor(t, "a check above the reserve that fetches", func() bool { return warmEntry(t, e, "acme", "python:3.12").State == store.WarmWarmed })
	if n := e.up.Count("GET", "manifest"); n != 1 {
		t.Errorf("budget above the reserve: %d manifest GETs, want 1", n)
	}
}

// --auto-top keeps the tags pulled most in the window warm.
func TestWarmAutoTopPicksMostPulled(t *testing.T) {
	t.Parallel()
	e, _ := warmEnv(t, envOptions{})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	opts := pullOpts("alice", tok)
	ctx := context.Background()
	for image, pulls := range map[string]int{"a:1": 3, "b:1": 2, "c:1": 1} {
		name, tag, _ := strings.Cut(image, ":")
		e.up.PushRandomImage(t, "library/"+name, tag, 1, 1024)
		for range pulls {
			pullAll(t, e.ref("acme", image), opts)
		}
	}
	e.app.Cache.FlushReads(ctx) // the pull counts are written with the read times
	if _, err := e.app.Admin.SetWarmAuto(ctx, admin.System, "acme", admin.WarmAutoInput{Top: 2, Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	startWarmer(t, e)
	waitFor(t, "the auto-top entries", func() bool {
		_, a, err := e.app.Admin.WarmEntries(ctx, admin.System, "acme")
		return err == nil && a != nil && a.RefreshedAt != nil
	})
	es, _, err := e.app.Admin.WarmEntries(ctx, admin.System, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range es {
		if !x.Auto {
			t.Errorf("entry %s is not marked auto", x.Ref())
		}
		got = append(got, x.Ref())
	}
	if strings.Join(got, " ") != "a:1 b:1" {
		t.Errorf("auto-top 2 entries = %v, want [a:1 b:1] (pulled 3 and 2 times; c:1 once)", got)
	}
}

// Of two replicas sharing PostgreSQL, one runs the warmer; when it stops,
// the other takes over.
func TestReplicasRunOneWarmer(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	r1, runs1 := warmEnv(t, envOptions{keepUpstream: up, configure: c.configure})
	r2, runs2 := warmEnv(t, envOptions{keepUpstream: up, configure: c.configure})
	r1.group("acme")
	up.PushRandomImage(t, "library/alpine", "3", 1, 1024)
	if _, err := r1.app.Admin.AddWarmEntries(context.Background(), admin.System, "acme", []string{"alpine:3"}, admin.WarmInput{Every: time.Second}); err != nil {
		t.Fatal(err)
	}
	stop1 := startWarmer(t, r1)
	waitFor(t, "replica 1 running the warmer", r1.app.Warmer.Running)
	stop2 := startWarmer(t, r2)
	// Replica 1 checks the entry several times while replica 2 tries for
	// the lock every 50 ms.
	waitFor(t, "three runs on replica 1", func() bool { return runs1.count(func(r warm.Run) bool { return r.Checked > 0 }) >= 3 })
	if r2.app.Warmer.Running() || runs2.total() != 0 {
		t.Fatalf("replica 2 ran the warmer (%d runs) while replica 1 held it", runs2.total())
	}
	stop1()
	waitFor(t, "replica 2 taking the warmer over", func() bool { return runs2.count(func(r warm.Run) bool { return r.Checked > 0 }) > 0 })
	stop2()
}

// After a 429 the warmer backs off with the rest of dproxy: the entry says
// throttled, and its next check sends nothing upstream until the back-off
// ends.
func TestWarmBacksOffAfter429(t *testing.T) {
	t.Parallel()
	e, runs := warmEnv(t, envOptions{})
	e.group("acme")
	ctx := context.Background()
	e.up.PushRandomImage(t, "library/ruby", "3", 1, 1024)
	if _, err := e.app.Admin.AddWarmEntries(ctx, admin.System, "acme", []string{"ruby:3"}, admin.WarmInput{Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	startWarmer(t, e)
	waitFor(t, "the first check", func() bool { return warmEntry(t, e, "acme", "ruby:3").State == store.WarmWarmed })

	e.up.Set429(true, time.Hour)
	if _, err := e.app.Admin.WarmNow(ctx, admin.System, "acme", "ruby:3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a throttled check", func() bool { return warmEntry(t, e, "acme", "ruby:3").State == store.WarmThrottled })
	e.up.ResetCounts()
	before := runs.count(func(r warm.Run) bool { return r.Checked > 0 })
	if _, err := e.app.Admin.WarmNow(ctx, admin.System, "acme", "ruby:3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "another check", func() bool { return runs.count(func(r warm.Run) bool { return r.Checked > 0 }) > before })
	for _, k := range []string{"manifest", "blob", "token"} {
		for _, m := range []string{"GET", "HEAD"} {
			if n := e.up.Count(m, k); n != 0 {
				t.Errorf("during the back-off the warmer sent %d %s %s upstream, want 0", n, m, k)
			}
		}
	}
	if got := warmEntry(t, e, "acme", "ruby:3"); got.State != store.WarmThrottled {
		t.Errorf("check during the back-off: %s (%s), want %s", got.State, got.Message, store.WarmThrottled)
	}
}

// The warmer never evicts to make room: when an image's missing blobs
// would pass the size cap, it fetches none of them.
func TestWarmRespectsTheSizeCap(t *testing.T) {
	t.Parallel()
	e, _ := warmEnv(t, envOptions{configure: func(cfg *config.Config) { cfg.CacheMaxSize = 64 << 10 }})
	e.group("acme")
	ctx := context.Background()
	e.up.PushRandomImage(t, "library/big", "1", 2, 48<<10) // 96 KiB of layers
	if _, err := e.app.Admin.AddWarmEntries(ctx, admin.System, "acme", []string{"big:1"}, admin.WarmInput{Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	startWarmer(t, e)
	waitFor(t, "the first check", func() bool { return warmEntry(t, e, "acme", "big:1").CheckedAt != nil })
	if got := warmEntry(t, e, "acme", "big:1"); got.State != store.WarmSizeCap {
		t.Errorf("state %s (%s), want %s", got.State, got.Message, store.WarmSizeCap)
	}
	if n := e.up.Count("GET", "blob"); n != 0 {
		t.Errorf("the warmer downloaded %d blobs past the size cap, want 0", n)
	}
}
