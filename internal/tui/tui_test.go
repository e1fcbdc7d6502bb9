package tui

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/dproxy/dproxy/internal/adminclient"
)

// updating reports whether -update asks to rewrite the golden screens in
// testdata (the flag is teatest's golden package's).
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

var clock = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeAPI is an in-memory admin API: what the model shows and does can be
// checked without a server. Its err, when set, fails every call.
type fakeAPI struct {
	mu      sync.Mutex
	groups  []adminclient.BrowseGroup
	images  map[string][]adminclient.ManifestWithContent
	blobs   map[string][]adminclient.Blob
	limits  []adminclient.UpstreamRateLimit
	warm    map[string][]adminclient.WarmEntry
	err     error
	actions []string
	server  string                   // default http://127.0.0.1:5000
	calls   int                      // calls that went through fail (header, groups, group, actions)
	user    *adminclient.CurrentUser // default the admin

	stats     adminclient.CacheActivity
	downloads []adminclient.ActiveDownload
	pulls     []adminclient.RecentPull
}

func (f *fakeAPI) CacheActivity(context.Context) (adminclient.CacheActivity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats, f.err
}

// ActivitySnapshot answers as the server: the pulls (newest first) after
// the one numbered after.
func (f *fakeAPI) ActivitySnapshot(_ context.Context, first int, after adminclient.Seq) (adminclient.ActivitySnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var pulls []adminclient.RecentPull
	for _, p := range f.pulls {
		if p.Seq > after && len(pulls) < first {
			pulls = append(pulls, p)
		}
	}
	return adminclient.ActivitySnapshot{Stats: f.stats, Limits: f.limits,
		Downloads: append([]adminclient.ActiveDownload(nil), f.downloads...), Pulls: pulls}, f.err
}

func (f *fakeAPI) DashboardSnapshot(_ context.Context, buckets int) (adminclient.DashboardSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return adminclient.DashboardSnapshot{Stats: f.stats, Limits: f.limits,
		Last15: fakeSeries(15, buckets), Last60: fakeSeries(60, buckets)}, f.err
}

func (f *fakeAPI) Server() string {
	if f.server != "" {
		return f.server
	}
	return "http://127.0.0.1:5000"
}

func (f *fakeAPI) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.err
}

func (f *fakeAPI) CurrentUser(context.Context) (adminclient.CurrentUser, error) {
	if f.user != nil {
		return *f.user, f.fail()
	}
	return adminclient.CurrentUser{Username: "admin", Admin: true}, f.fail()
}

func (f *fakeAPI) UpstreamRateLimits(context.Context) ([]adminclient.UpstreamRateLimit, error) {
	return f.limits, f.fail()
}

func (f *fakeAPI) BrowseGroups(context.Context) ([]adminclient.BrowseGroup, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]adminclient.BrowseGroup(nil), f.groups...), nil
}

func (f *fakeAPI) Group(_ context.Context, path string) (adminclient.Group, error) {
	if err := f.fail(); err != nil {
		return adminclient.Group{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, g := range f.groups {
		if g.FullPath == path {
			return adminclient.Group{GroupSummary: g.GroupSummary, Name: path, TTLPolicy: g.TTLPolicy,
				ImagePrefix:       "127.0.0.1:5000/" + path + "/dependency_proxy/containers",
				DirectImagePrefix: "127.0.0.1:5000/" + path + "/dependency_proxy/containers"}, nil
		}
	}
	return adminclient.Group{}, &adminclient.NotFoundError{Kind: "group", Name: path}
}

func (f *fakeAPI) BrowseManifests(_ context.Context, group string, _ int) ([]adminclient.ManifestWithContent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]adminclient.ManifestWithContent(nil), f.images[group]...), f.err
}

func (f *fakeAPI) BrowseBlobs(_ context.Context, group string, _ int) ([]adminclient.Blob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]adminclient.Blob(nil), f.blobs[group]...), f.err
}

func (f *fakeAPI) WarmEntries(_ context.Context, group string) (adminclient.WarmList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return adminclient.WarmList{Entries: append([]adminclient.WarmEntry(nil), f.warm[group]...)}, f.err
}

func (f *fakeAPI) DeleteManifest(_ context.Context, group, image, ref string) (adminclient.Manifest, error) {
	if err := f.fail(); err != nil {
		return adminclient.Manifest{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, "delete "+group+" "+image+":"+ref)
	kept := f.images[group][:0]
	for _, im := range f.images[group] {
		if im.Image != image || im.Reference != ref {
			kept = append(kept, im)
		}
	}
	f.images[group] = kept
	return adminclient.Manifest{}, nil
}

func (f *fakeAPI) PurgeCache(_ context.Context, group string) (adminclient.PurgeResult, error) {
	if err := f.fail(); err != nil {
		return adminclient.PurgeResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, "purge "+group)
	n := len(f.images[group])
	f.images[group], f.blobs[group] = nil, nil
	for i := range f.groups {
		if f.groups[i].FullPath == group {
			f.groups[i].ImageCount, f.groups[i].CachedImageCount, f.groups[i].BlobCount, f.groups[i].TotalSizeBytes = 0, 0, 0, 0
		}
	}
	return adminclient.PurgeResult{ManifestCount: n, BlobCount: 2, FreedBytes: 3 << 20}, nil
}

func (f *fakeAPI) UpdateProxySettings(_ context.Context, in adminclient.ProxySettingsInput) (adminclient.ProxySetting, error) {
	if err := f.fail(); err != nil {
		return adminclient.ProxySetting{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, fmt.Sprintf("enabled %s %v", in.GroupPath, *in.Enabled))
	for i := range f.groups {
		if f.groups[i].FullPath == in.GroupPath {
			f.groups[i].Setting = &adminclient.ProxySetting{Enabled: *in.Enabled}
		}
	}
	return adminclient.ProxySetting{Enabled: *in.Enabled}, nil
}

const indexJSON = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
	`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":480,"platform":{"os":"linux","architecture":"amd64"}},` +
	`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":480,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}`

const imageJSON = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
	`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":1024},` +
	`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","size":3145728},` +
	`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:7777777777777777777777777777777777777777777777777777777777777777","size":12582912}]}`

func newFake() *fakeAPI {
	on := &adminclient.ProxySetting{Enabled: true}
	ttl := &adminclient.TTLPolicy{Enabled: true, TTL: 90}
	g := func(path string, images, blobs int, size int64, s *adminclient.ProxySetting) adminclient.BrowseGroup {
		return adminclient.BrowseGroup{GroupSummary: adminclient.GroupSummary{FullPath: path, Setting: s,
			ImageCount: images, CachedImageCount: images, BlobCount: blobs, TotalSizeBytes: adminclient.Bytes(size)}, TTLPolicy: ttl}
	}
	im := func(name, ref, digest, mt, content string, size int64, created, read time.Duration) adminclient.ManifestWithContent {
		return adminclient.ManifestWithContent{Manifest: adminclient.Manifest{ID: name + ref, Image: name, ImageName: name + ":" + ref, Reference: ref,
			Digest: digest, MediaType: mt, Size: adminclient.Bytes(size), CreatedAt: clock.Add(-created), ReadAt: clock.Add(-read)}, Content: content}
	}
	sized := func(m adminclient.ManifestWithContent, image, cached int64, platforms, platformsCached int) adminclient.ManifestWithContent {
		m.ImageSize, m.CachedSize, m.Platforms, m.PlatformsCached = adminclient.Bytes(image), adminclient.Bytes(cached), platforms, platformsCached
		return m
	}
	return &fakeAPI{
		groups: []adminclient.BrowseGroup{
			g("zeta", 0, 0, 0, &adminclient.ProxySetting{}),
			g("acme", 2, 3, 5<<20, on),
			g("acme/ci", 1, 1, 40<<20, on),
		},
		images: map[string][]adminclient.ManifestWithContent{
			"acme": {
				// The index of two platforms, one of them cached.
				sized(im("library/alpine", "latest", "sha256:aaaaaaaaaaaa0000000000000000000000000000000000000000000000000000",
					"application/vnd.oci.image.index.v1+json", indexJSON, 1024, 3*time.Hour, 5*time.Minute), 7<<20, 3<<20, 2, 1),
				// redis pulled by digest after its tag: one image, one row.
				sized(im("library/redis", "sha256:bbbbbbbbbbbb0000000000000000000000000000000000000000000000000000",
					"sha256:bbbbbbbbbbbb0000000000000000000000000000000000000000000000000000",
					"application/vnd.oci.image.manifest.v1+json", imageJSON, 2048, 50*time.Hour, time.Hour), 30<<20, 30<<20, 0, 0),
				sized(im("library/redis", "7", "sha256:bbbbbbbbbbbb0000000000000000000000000000000000000000000000000000",
					"application/vnd.oci.image.manifest.v1+json", imageJSON, 2048, 50*time.Hour, 2*time.Hour), 30<<20, 30<<20, 0, 0),
				// alpine's amd64 platform, pulled by digest through its index.
				sized(im("library/alpine", "sha256:1111111111111111111111111111111111111111111111111111111111111111",
					"sha256:1111111111111111111111111111111111111111111111111111111111111111",
					"application/vnd.oci.image.manifest.v1+json", imageJSON, 480, 3*time.Hour, 5*time.Minute), 3<<20, 3<<20, 0, 0),
			},
		},
		blobs: map[string][]adminclient.Blob{
			"acme": {
				{Digest: "sha256:4444444444444444444444444444444444444444444444444444444444444444", Size: 3 << 20, ReadAt: clock.Add(-time.Hour)},
				{Digest: "sha256:3333333333333333333333333333333333333333333333333333333333333333", Size: 1024, ReadAt: clock.Add(-time.Hour)},
			},
		},
		limits: []adminclient.UpstreamRateLimit{{Credential: "anonymous", Limit: 100, Remaining: 97}},
		stats: adminclient.CacheActivity{StartedAt: clock.Add(-2 * time.Hour),
			Last5Minutes: totals(40, 34, 4, 2, 9, 300<<20, 20<<20),
			SinceStart:   totals(1200, 1000, 150, 50, 310, 9<<30, 1<<30)},
		downloads: []adminclient.ActiveDownload{
			{Digest: "sha256:5555555555555555555555555555555555555555555555555555555555555555", Image: "library/postgres",
				GroupPaths: []string{"acme"}, Bytes: 96 << 20, TotalBytes: ptr(adminclient.Bytes(128 << 20)), Clients: 3, StartedAt: clock.Add(-12 * time.Second)},
			{Digest: "sha256:6666666666666666666666666666666666666666666666666666666666666666", Image: "tools/build",
				VirtualRegistry: ptr("internal"), VirtualRegistryGroup: ptr("acme"), Bytes: 5 << 20, Clients: 1, StartedAt: clock.Add(-75 * time.Second)},
		},
		pulls: fakePulls(),
	}
}

func ptr[T any](v T) *T { return &v }

// totals are counts with their ratios, as the server computes them.
func totals(requests, hits, misses, stale, saved int, fromCache, fromUpstream int64) adminclient.ActivityTotals {
	t := adminclient.ActivityTotals{Requests: requests, Hits: hits, Misses: misses, Stale: stale, UpstreamPullsSaved: saved,
		BytesFromCache: adminclient.Bytes(fromCache), BytesFromUpstream: adminclient.Bytes(fromUpstream), UpstreamRequests: misses + 1}
	if requests > 0 {
		t.HitRatio = ptr(float64(hits+stale) / float64(requests))
	}
	if fromCache+fromUpstream > 0 {
		t.ByteHitRatio = ptr(float64(fromCache) / float64(fromCache+fromUpstream))
	}
	return t
}

// fakePulls are recent pulls of every kind, newest first.
func fakePulls() []adminclient.RecentPull {
	var out []adminclient.RecentPull
	images := []string{"library/alpine", "library/redis", "library/postgres", "tools/build"}
	results := []string{"hit", "hit", "miss", "stale", "hit"}
	for i := range 40 {
		p := adminclient.RecentPull{Seq: adminclient.Seq(40 - i), At: clock.Add(-time.Duration(i*7) * time.Second), Result: results[i%len(results)],
			Image: images[i%len(images)], Client: fmt.Sprintf("10.0.0.%d", 10+i%3), Principal: []string{"ci-deploy", "alice"}[i%2]}
		if i%3 == 0 {
			p.Kind, p.Reference = "manifest", "latest"
		} else {
			p.Kind, p.Reference = "blob", fmt.Sprintf("sha256:%064d", i)
		}
		if p.Image == "tools/build" {
			p.VirtualRegistry, p.VirtualRegistryGroup = ptr("internal"), ptr("acme")
		} else {
			p.GroupPath = ptr([]string{"acme", "acme/ci"}[i%2])
		}
		out = append(out, p)
	}
	return out
}

// fakeSeries is a window of minutes in n buckets whose figures follow
// waves, so that every sparkline level shows: no traffic in the first
// fifth, then requests rising and falling, the hit ratio climbing as the
// cache fills; Docker Hub reported its limit in the second half only, one
// pull fewer each bucket.
func fakeSeries(minutes, n int) []adminclient.ActivityBucket {
	out := make([]adminclient.ActivityBucket, n)
	secs := minutes * 60
	for i := range out {
		out[i].Start = clock.Add(time.Duration(i*secs/n-secs) * time.Second)
		if i < n/5 {
			continue
		}
		wave := (i*7)%13 + 1
		hits := wave * 10 * (i + 1) / n
		out[i].Totals = totals(wave*10, hits, wave*10-hits, 0, hits/2, int64(hits)<<22, int64(wave*10-hits)<<22)
		if i >= n/2 {
			out[i].DockerHubRemaining = ptr(180 - i)
		}
	}
	return out
}

func newModel(api API, w, h int) Model {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	m := New(api, r, Options{Now: func() time.Time { return clock }, LiveEvery: -1})
	return drive(m, m.Init(), tea.WindowSizeMsg{Width: w, Height: h})
}

// drive runs cmd, then delivers each of msgs, each time with everything
// its commands produce (as a user who waits for the screen to settle
// before the next key), synchronously, dropping spinner ticks (which would
// tick forever).
func drive(m Model, cmd tea.Cmd, msgs ...tea.Msg) Model {
	settle := func(queue []tea.Msg) {
		for len(queue) > 0 {
			msg := queue[0]
			queue = queue[1:]
			next, cmd := m.Update(msg)
			m = next.(Model)
			queue = append(queue, run(cmd)...)
		}
	}
	settle(run(cmd))
	for _, msg := range msgs {
		settle([]tea.Msg{msg})
	}
	return m
}

func run(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	switch msg := cmd().(type) {
	case tea.BatchMsg:
		var out []tea.Msg
		for _, c := range msg {
			out = append(out, run(c)...)
		}
		return out
	case spinner.TickMsg, nil:
		return nil
	case tea.QuitMsg:
		return nil
	default:
		return []tea.Msg{msg}
	}
}

// keys turns "enter", "esc", "tab", "down", "pgdown", "backspace" and
// plain text (a key a character) into key messages.
func keys(ks ...string) []tea.Msg {
	var out []tea.Msg
	for _, k := range ks {
		switch k {
		case "enter":
			out = append(out, tea.KeyMsg{Type: tea.KeyEnter})
		case "esc":
			out = append(out, tea.KeyMsg{Type: tea.KeyEsc})
		case "tab":
			out = append(out, tea.KeyMsg{Type: tea.KeyTab})
		case "down":
			out = append(out, tea.KeyMsg{Type: tea.KeyDown})
		case "pgdown":
			out = append(out, tea.KeyMsg{Type: tea.KeyPgDown})
		case "backspace":
			out = append(out, tea.KeyMsg{Type: tea.KeyBackspace})
		default:
			for _, r := range k {
				out = append(out, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
			}
		}
	}
	return out
}

func press(m Model, ks ...string) Model { return drive(m, nil, keys(ks...)...) }

func mustContain(t *testing.T, screen string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(screen, w) {
			t.Errorf("screen lacks %q:\n%s", w, screen)
		}
	}
}

func mustNotContain(t *testing.T, screen string, bad ...string) {
	t.Helper()
	for _, b := range bad {
		if strings.Contains(screen, b) {
			t.Errorf("screen has %q:\n%s", b, screen)
		}
	}
}

func golden(t *testing.T, name, screen string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if updating() {
		if err := os.WriteFile(path, []byte(screen), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s (run with -update to create it): %v", path, err)
	}
	if string(want) != screen {
		t.Errorf("%s differs from the screen (run with -update after checking):\n--- want\n%s\n--- got\n%s", path, want, screen)
	}
}

// Every screen fits the terminal: no line is wider and there are exactly
// as many lines as rows.
func checkFits(t *testing.T, screen string, w, h int) {
	t.Helper()
	lines := strings.Split(screen, "\n")
	if len(lines) != h {
		t.Errorf("%d lines on a %d-row terminal", len(lines), h)
	}
	for i, l := range lines {
		if lipgloss.Width(l) > w {
			t.Errorf("line %d is %d cells on a %d-column terminal: %q", i+1, lipgloss.Width(l), w, l)
		}
	}
}

func TestGoldenScreens(t *testing.T) {
	t.Parallel()
	for _, size := range []struct{ w, h int }{{80, 24}, {120, 40}} {
		for _, tc := range []struct {
			name string
			keys []string
		}{
			{"groups", nil},
			{"group-images", []string{"enter"}},
			{"group-blobs", []string{"enter", "tab"}},
			{"detail-index", []string{"enter", "enter"}},
			{"confirm-purge", []string{"p"}},
			{"help", []string{"?"}},
		} {
			name := fmt.Sprintf("%s-%dx%d", tc.name, size.w, size.h)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				m := press(newModel(newFake(), size.w, size.h), tc.keys...)
				screen := m.View()
				checkFits(t, screen, size.w, size.h)
				golden(t, name, screen)
			})
		}
	}
}

func TestNavigation(t *testing.T) {
	t.Parallel()
	m := newModel(newFake(), 80, 24)
	s := m.View()
	mustContain(t, s, "admin", "Hub 97/100", "cache 45.0 MiB", "acme", "  ci", "zeta", "enabled", "90d")
	// By name, acme/ci follows acme indented; the cursor starts on acme.
	if i, j := strings.Index(s, "acme"), strings.Index(s, "  ci"); i < 0 || j < i {
		t.Errorf("subgroup not under its parent:\n%s", s)
	}

	m = press(m, "j", "enter") // acme/ci: no images
	mustContain(t, m.View(), "Group acme/ci", "No cached images yet — pull", "`127.0.0.1:5000/acme/ci/dependency_proxy/containers/alpine:latest`")
	m = press(m, "esc", "k", "enter")
	s = m.View()
	mustContain(t, s, "Group acme", "library/alpine", "latest", "aaaaaaaaaaaa", "index", "single-arch", "5m ago",
		"7.0 MiB   3.0 MiB", "30.0 MiB  30.0 MiB  1h ago")
	// redis by tag and by digest is one image, with its tag.
	if n := strings.Count(s, "library/redis"); n != 1 {
		t.Errorf("library/redis on %d rows, want 1 (tag and digest merged):\n%s", n, s)
	}

	m = press(m, "tab")
	mustContain(t, m.View(), "sha256:4444", "3.0 MiB", "1h ago")
	m = press(m, "tab", "G", "enter") // by name redis is last: G → redis
	s = m.View()
	mustContain(t, s, "acme › library/redis:7", "Pull reference:", "  127.0.0.1:5000/acme/dependency_proxy/containers/library/redis:7",
		"✓ sha256:333333333333    1.0 KiB  cached", "Layers:", "✓ sha256:444444444444    3.0 MiB  cached",
		"· sha256:777777777777   12.0 MiB  not cached", "2 layers, 15.0 MiB; 1 cached (3.0 MiB)", `"schemaVersion": 2`)
	m = press(m, "esc", "g", "enter")
	mustContain(t, m.View(), "Platforms:", "linux/amd64", "linux/arm64/v8")
	m = press(m, "esc", "esc")
	mustContain(t, m.View(), "Groups")

	next, cmd := m.Update(keys("q")[0])
	if _, ok := cmd().(tea.QuitMsg); !ok || next == nil {
		t.Errorf("q did not quit")
	}
}

// A subgroup is indented under its parent when the parent is listed, and
// shows its full path when it is not (a member of the subgroup only).
func TestSubgroupIndent(t *testing.T) {
	t.Parallel()
	api := newFake()
	g := func(path string) adminclient.BrowseGroup {
		return adminclient.BrowseGroup{GroupSummary: adminclient.GroupSummary{FullPath: path}}
	}
	api.groups = []adminclient.BrowseGroup{g("acme"), g("acme/ci"), g("acme/ci/nightly"), g("beta/tools"), g("beta/tools/old")}
	s := newModel(api, 80, 24).View()
	for _, want := range []string{"\nacme ", "\n  ci ", "\n    nightly ", "\nbeta/tools ", "\n  old "} {
		mustContain(t, s, want)
	}
}

// Virtual registries show beside the groups.
func TestVirtualRegistriesBesideGroups(t *testing.T) {
	t.Parallel()
	api := newFake()
	api.groups[1].VirtualRegistries = []adminclient.VirtualRegistry{{
		Name: "all", GroupPath: "acme", PullPrefix: "127.0.0.1:5000/virtual_registries/container/1",
		Upstreams: []adminclient.VirtualUpstream{{Name: "hub"}, {Name: "quay"}},
	}}
	m := newModel(api, 100, 24)
	s := m.View()
	mustContain(t, s, "VIRTUAL REGISTRY", "all", "hub,quay", "127.0.0.1:5000/virtual_registries/container/1", "zeta")
	checkFits(t, s, 100, 24)
	m = press(m, "/", "zeta", "enter")
	mustNotContain(t, m.View(), "VIRTUAL REGISTRY")
}

// An image that leaves the cache while it is open says so after a refresh
// and still shows what it was.
func TestDetailOfAnImageThatLeft(t *testing.T) {
	t.Parallel()
	api := newFake()
	m := press(newModel(api, 80, 24), "enter", "G", "enter")
	mustNotContain(t, m.View(), "no longer cached")
	api.mu.Lock()
	api.images["acme"] = api.images["acme"][:1]
	api.mu.Unlock()
	m = press(m, "r")
	mustContain(t, m.View(), "library/redis:7 is no longer cached", "Pull reference:")
}

// Keys that arrive together (typed fast, or over a slow link) act one by
// one; pasted text outside the filter does nothing.
func TestKeysInOneRead(t *testing.T) {
	t.Parallel()
	api := newFake()
	m := newModel(api, 80, 24)
	burst := drive(m, nil, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/ze")})
	s := burst.View()
	mustContain(t, s, "zeta", "enter: keep filter")
	mustNotContain(t, s, "acme")

	pasted := drive(m, nil, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("py"), Paste: true})
	mustNotContain(t, pasted.View(), "Purge the cache")
	typed := drive(m, nil, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("py")})
	mustContain(t, typed.View(), "purged acme")
	if len(api.actions) != 1 || api.actions[0] != "purge acme" {
		t.Errorf("actions = %v, want one purge after p and y typed together, none after pasting them", api.actions)
	}
}

func TestFilterAndSort(t *testing.T) {
	t.Parallel()
	m := newModel(newFake(), 80, 24)
	m = press(m, "/", "ze")
	s := m.View()
	mustContain(t, s, "zeta")
	mustNotContain(t, s, "acme")
	m = press(m, "enter") // keep the filter
	mustContain(t, m.View(), "filter /ze")
	m = press(m, "/", "backspace", "backspace", "nothing", "enter")
	mustContain(t, m.View(), "No group matches /nothing")
	m = press(m, "/", "esc")
	mustContain(t, m.View(), "acme", "zeta")

	m = press(m, "s") // by size: acme/ci (40 MiB) first, full paths
	s = m.View()
	if i, j := strings.Index(s, "acme/ci"), strings.Index(s, "zeta"); i < 0 || j < i {
		t.Errorf("by size, acme/ci should come before zeta:\n%s", s)
	}
	mustContain(t, s, "by size")

	m = press(m, "s", "enter", "/", "redis", "enter")
	s = m.View()
	mustContain(t, s, "library/redis")
	mustNotContain(t, s, "library/alpine")
}

func TestConfirmations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		keys     []string
		question string
		action   string
		result   string
	}{
		{"purge", []string{"p"}, "Purge the cache of group acme?", "purge acme", "purged acme: 4 manifests, 2 blobs, 3.0 MiB freed"},
		{"disable", []string{"e"}, "Disable the dependency proxy of acme?", "enabled acme false", "dependency proxy of acme disabled"},
		{"enable", []string{"j", "j", "e"}, "Enable the dependency proxy of zeta?", "enabled zeta true", "dependency proxy of zeta enabled"},
		{"delete from the list", []string{"enter", "x"}, "Delete library/alpine:latest (sha256:aaaaaaaaaaaa) from the cache of acme?", "delete acme library/alpine:latest", "deleted library/alpine:latest from acme"},
		{"delete from the detail", []string{"enter", "G", "enter", "x"}, "Delete library/redis:7", "delete acme library/redis:7", "deleted library/redis:7 from acme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := newFake()
			m := press(newModel(api, 100, 30), tc.keys...)
			mustContain(t, m.View(), tc.question, "y: yes")

			// Only y confirms: enter, pressed by habit, leaves the dialog open.
			mustContain(t, press(m, "enter").View(), tc.question, "y: yes")
			for _, no := range []string{"n", "esc"} {
				cancelled := press(m, no)
				mustContain(t, cancelled.View(), "cancelled; nothing was changed")
			}
			if len(api.actions) != 0 {
				t.Fatalf("enter or a cancel ran %v", api.actions)
			}

			done := press(m, "y")
			if len(api.actions) != 1 || api.actions[0] != tc.action {
				t.Errorf("actions = %v, want [%s]", api.actions, tc.action)
			}
			s := done.View()
			mustContain(t, s, tc.result)
			mustNotContain(t, s, "y: yes")
		})
	}
}

func TestFailuresKeepRunning(t *testing.T) {
	t.Parallel()
	api := newFake()
	m := newModel(api, 80, 24)

	// An action the server refuses: the reason in the status line.
	api.err = errors.New("permission denied: purging the cache of acme needs owner")
	m = press(m, "p", "y")
	mustContain(t, m.View(), "error: purge acme: permission denied: purging the cache of acme needs owner", "acme")

	// The server goes away: refresh fails, the last data stays on screen,
	// and the browser keeps answering keys.
	api.err = &adminclient.UnreachableError{Server: api.Server(), Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	m = press(m, "r")
	s := m.View()
	mustContain(t, s, "error: list groups: cannot reach dproxy at http://127.0.0.1:5000", "zeta")
	m = press(m, "j", "enter")
	mustContain(t, m.View(), "error:", "open group acme/ci")

	// It comes back.
	api.err = nil
	m = press(m, "esc", "r")
	mustNotContain(t, m.View(), "error:")
	mustContain(t, m.View(), "refreshed at 12:00:00")
}

func TestResize(t *testing.T) {
	t.Parallel()
	m := newModel(newFake(), 120, 40)
	for _, size := range []struct{ w, h int }{{80, 24}, {60, 15}, {200, 50}, {120, 40}} {
		m = drive(m, nil, tea.WindowSizeMsg{Width: size.w, Height: size.h})
		checkFits(t, m.View(), size.w, size.h)
		m = press(m, "enter")
		checkFits(t, m.View(), size.w, size.h)
		m = press(m, "esc")
	}
}

func TestAutoRefreshToggle(t *testing.T) {
	t.Parallel()
	r := lipgloss.NewRenderer(io.Discard)
	m := New(newFake(), r, Options{RefreshEvery: time.Hour, Now: func() time.Time { return clock }, LiveEvery: -1})
	m.SetSize(80, 24)
	if !strings.Contains(m.View(), "auto 1h0m0s") {
		t.Errorf("auto-refresh not shown as on:\n%s", m.View())
	}
	next, cmd := m.Update(keys("A")[0])
	m = next.(Model)
	if m.auto || cmd != nil || !strings.Contains(m.View(), "auto-refresh off") {
		t.Errorf("a did not turn auto-refresh off (auto %v)", m.auto)
	}
	// A tick of the old generation is ignored.
	if _, cmd := m.Update(refreshMsg{gen: 0}); cmd != nil {
		t.Error("a stale refresh tick reloaded")
	}
	next, cmd = m.Update(keys("A")[0])
	m = next.(Model)
	if !m.auto || cmd == nil {
		t.Error("a did not turn auto-refresh back on")
	}
}

// The footer names the keys of what is on screen, and at 80 columns and
// less still shows how to get every key and how to leave; dialogs, the
// filter and the help screen say how to get out of them.
func TestFooterFits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		keys   []string
		wants  []string // at 80 columns
		narrow []string // at 50 columns
		bad    []string
	}{
		{"groups", nil, []string{"enter open", "a activity", "d dashboard", "/ filter", "? help", "q quit"}, []string{"? help", "q quit"}, []string{"esc back"}},
		{"group images", []string{"enter"}, []string{"esc back", "tab blobs", "x delete", "? help", "q quit"}, []string{"esc back", "? help", "q quit"}, nil},
		{"group blobs", []string{"enter", "tab"}, []string{"esc back", "tab images", "p purge", "? help", "q quit"}, []string{"? help", "q quit"}, []string{"x delete"}},
		{"detail", []string{"enter", "enter"}, []string{"↑/k scroll", "esc back", "x delete", "? help", "q quit"}, []string{"esc back", "? help", "q quit"}, nil},
		{"confirmation", []string{"p"}, []string{"y yes", "n/esc cancel"}, []string{"y yes", "n/esc cancel"}, []string{"q quit"}},
		{"filter", []string{"/"}, []string{"enter: keep filter", "esc: clear filter"}, []string{"enter: keep filter"}, []string{"q quit"}},
		{"help", []string{"?"}, []string{"any key: close help", "q: quit"}, []string{"any key: close help", "q: quit"}, nil},
	} {
		for _, w := range []int{80, 50} {
			t.Run(fmt.Sprintf("%s-%d", tc.name, w), func(t *testing.T) {
				t.Parallel()
				m := press(newModel(newFake(), w, 24), tc.keys...)
				lines := strings.Split(m.View(), "\n")
				footer := lines[len(lines)-1]
				if lipgloss.Width(footer) > w {
					t.Errorf("footer is %d cells on a %d-column terminal: %q", lipgloss.Width(footer), w, footer)
				}
				wants := tc.wants
				if w < 80 {
					wants = tc.narrow
				}
				mustContain(t, footer, wants...)
				mustNotContain(t, footer, tc.bad...)
			})
		}
	}
}

// A long server name is cut in the header; the user, the limit and the
// cache size stay.
func TestHeaderLongServer(t *testing.T) {
	t.Parallel()
	api := newFake()
	api.server = "https://dependency-proxy.build-infrastructure.internal.example.com:5443"
	m := newModel(api, 80, 24)
	header := strings.Split(m.View(), "\n")[0]
	mustContain(t, header, "dproxy dependency-proxy.build-infrastructure.internal.…", "admin", "cache 45.0 MiB")
	mustContain(t, strings.Split(m.View(), "\n")[1], "Hub 97/100")
	if lipgloss.Width(header) > 80 {
		t.Errorf("header is %d cells: %q", lipgloss.Width(header), header)
	}
}

// With NO_COLOR the screen has no colour, but the cursor (reverse video)
// and the active tab (bold, underlined) still show.
func TestNoColorKeepsCursorAndTab(t *testing.T) {
	t.Parallel()
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.ANSI) // what Run sets for NO_COLOR
	m := New(newFake(), r, Options{Now: func() time.Time { return clock }, NoColor: true, LiveEvery: -1})
	m = drive(m, m.Init(), tea.WindowSizeMsg{Width: 100, Height: 30})
	m = press(m, "j")
	s := m.View()
	if !strings.Contains(s, "\x1b[7m") {
		t.Errorf("no reverse video marks the cursor:\n%q", s)
	}
	if strings.Contains(s, "\x1b[3") || strings.Contains(s, "\x1b[9") || strings.Contains(s, "38;") {
		t.Errorf("a colour was set with NO_COLOR:\n%q", s)
	}
	s = press(m, "enter").View()
	if !strings.Contains(s, "\x1b[1;4m") && !(strings.Contains(s, "\x1b[1m") && strings.Contains(s, "4m")) {
		t.Errorf("the active tab is not bold and underlined:\n%q", s)
	}
}

// In a group, s sorts the images and the blobs by size (largest first)
// and / filters the blobs tab too; in the detail, j and pgdown scroll;
// ctrl+c quits from anywhere.
func TestGroupSortDetailScrollAndQuit(t *testing.T) {
	t.Parallel()
	m := press(newModel(newFake(), 80, 24), "enter") // group acme
	before := m.View()
	if i, j := strings.Index(before, "library/alpine"), strings.Index(before, "library/redis"); i < 0 || j < i {
		t.Fatalf("by name, alpine comes first:\n%s", before)
	}
	m = press(m, "s")
	s := m.View()
	if i, j := strings.Index(s, "library/redis"), strings.Index(s, "library/alpine"); i < 0 || j < 0 || i > j {
		t.Errorf("by size, redis (2 KiB) comes before alpine (1 KiB):\n%s", s)
	}
	blobs := press(m, "tab", "s") // each tab keeps its own order
	if i, j := strings.Index(blobs.View(), "sha256:4444"), strings.Index(blobs.View(), "sha256:3333"); i < 0 || j < i {
		t.Errorf("blobs by size, the 3 MiB one first:\n%s", blobs.View())
	}
	blobs = press(blobs, "/", "3333", "enter")
	mustContain(t, blobs.View(), "sha256:3333")
	mustNotContain(t, blobs.View(), "sha256:4444")

	detail := press(newModel(newFake(), 80, 12), "enter", "enter") // alpine's index, taller than the screen
	top := detail.View()
	for _, k := range []string{"j", "pgdown"} {
		next := press(detail, k)
		if next.View() == top || strings.Contains(next.View(), "y: yes") {
			t.Errorf("%s did not scroll the detail:\n%s", k, next.View())
		}
	}

	for _, at := range []Model{newModel(newFake(), 80, 24), m, detail} {
		_, cmd := at.Update(tea.KeyMsg{Type: tea.KeyCtrlC})
		if cmd == nil {
			t.Fatal("ctrl+c returned no command")
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("ctrl+c did not quit")
		}
	}
}

// Calls run only in tea.Cmds, never in Update: while they are in flight
// the status line shows the spinner, and keys act at once.
func TestCallsInFlightShowSpinnerAndKeysAct(t *testing.T) {
	t.Parallel()
	api := newFake()
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	m := New(api, r, Options{Now: func() time.Time { return clock }, LiveEvery: -1})
	init := m.Init() // the header and groups calls, not run yet: in flight
	update := func(msg tea.Msg) tea.Cmd {
		next, cmd := m.Update(msg)
		m = next.(Model)
		return cmd
	}
	update(tea.WindowSizeMsg{Width: 80, Height: 24})
	s := m.View()
	mustContain(t, s, "loading groups…", spinner.Line.Frames[0]+" ")

	update(spinner.TickMsg{ID: m.spin.ID()}) // the spinner turns while waiting
	mustContain(t, m.View(), spinner.Line.Frames[1]+" ")
	for _, k := range keys("?") {
		update(k)
	}
	mustContain(t, m.View(), "quit") // the full help, shown at once
	update(keys("esc")[0])
	refresh := update(keys("r")[0]) // more calls, also in flight
	api.mu.Lock()
	calls := api.calls
	api.mu.Unlock()
	if calls != 0 {
		t.Errorf("Update called the API %d times; calls belong in commands", calls)
	}

	// Once the calls answer, the spinner stops and the groups show.
	m = drive(m, tea.Batch(init, refresh))
	s = m.View()
	mustContain(t, s, "acme", "zeta")
	for _, f := range spinner.Line.Frames {
		if strings.Contains(s, "\n"+f+" ") {
			t.Errorf("the spinner still shows after the calls ended:\n%s", s)
		}
	}
}

// The group screen marks the images whose tags the group keeps warm.
func TestGroupMarksWatchedImages(t *testing.T) {
	t.Parallel()
	f := newFake()
	m := newModel(f, 100, 24)
	m = press(m, "enter") // acme
	mustNotContain(t, m.View(), "(warm)")

	f.mu.Lock()
	f.warm = map[string][]adminclient.WarmEntry{"acme": {{Image: "alpine", Tag: "latest", State: "warmed"}}}
	f.mu.Unlock()
	m = newModel(f, 100, 24)
	m = press(m, "enter")
	mustContain(t, m.View(), "library/alpine (warm)")
}
