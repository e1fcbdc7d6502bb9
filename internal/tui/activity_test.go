package tui

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	"github.com/dproxy/dproxy/internal/adminclient"
)

// runProgram runs the browser as a program on a terminal of w × h, fed by
// api, refreshing live every live.
func runProgram(t *testing.T, api API, w, h int, live time.Duration, o Options) *teatest.TestModel {
	t.Helper()
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	o.Now, o.LiveEvery = func() time.Time { return clock }, live
	return teatest.NewTestModel(t, New(api, r, o), teatest.WithInitialTermSize(w, h))
}

// waitOutput waits until the program has drawn every one of wants.
func waitOutput(t *testing.T, tm *teatest.TestModel, wants ...string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(out []byte) bool {
		for _, w := range wants {
			if !bytes.Contains(out, []byte(w)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
}

// finalView quits the program and returns its last screen.
func finalView(t *testing.T, tm *teatest.TestModel) string {
	t.Helper()
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")})
	return tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).View()
}

// The activity screen and the dashboard, as a program on a terminal, fed
// by the fake server: golden screens at 80×24 and 140×40.
func TestGoldenLiveScreens(t *testing.T) {
	t.Parallel()
	for _, size := range []struct{ w, h int }{{80, 24}, {140, 40}} {
		for _, tc := range []struct {
			name, key string
			wants     []string
		}{
			{"activity", "a", []string{"Downloads in flight (2)", "Recent pulls (40)"}},
			{"dashboard", "d", []string{"last 60 minutes", "Docker Hub left"}},
		} {
			name := fmt.Sprintf("%s-%dx%d", tc.name, size.w, size.h)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				tm := runProgram(t, newFake(), size.w, size.h, -1, Options{})
				waitOutput(t, tm, "acme")
				tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(tc.key)})
				waitOutput(t, tm, tc.wants...)
				screen := finalView(t, tm)
				checkFits(t, screen, size.w, size.h)
				golden(t, name, screen)
			})
		}
	}
}

// `dproxy tui --activity` starts on the activity screen, which follows the
// server by itself: a download's progress and a new pull show without a
// key, and a download that ended leaves.
func TestActivityRefreshesLive(t *testing.T) {
	t.Parallel()
	api := newFake()
	tm := runProgram(t, api, 140, 40, 10*time.Millisecond, Options{StartActivity: true})
	waitOutput(t, tm, "Activity", "library/postgres", "96.0 MiB/128.0 MiB", " 75%")

	api.mu.Lock()
	api.downloads[0].Bytes = 120 << 20
	api.downloads[0].Clients = 4
	api.pulls = append([]adminclient.RecentPull{{Seq: 41, At: clock, Result: "miss", Kind: "manifest", Image: "library/nginx",
		Reference: "1.27", GroupPath: ptr("acme"), Client: "10.0.0.99", Principal: "bob"}}, api.pulls...)
	api.mu.Unlock()
	waitOutput(t, tm, "120.0 MiB/128.0 MiB", " 93%", "library/nginx:1.27", "10.0.0.99")

	api.mu.Lock()
	api.downloads = api.downloads[1:]
	api.mu.Unlock()
	waitOutput(t, tm, "Downloads in flight (1)")
	screen := finalView(t, tm)
	mustNotContain(t, screen, "library/postgres ")
	mustContain(t, screen, "tools/build", "acme/internal (virtual)", "Recent pulls (41)")
}

func TestActivityKeys(t *testing.T) {
	t.Parallel()
	m := newModel(newFake(), 140, 40)
	m = press(m, "enter") // acme
	m.note("an old message")
	m = press(m, "a")
	s := m.View()
	mustContain(t, s, "Activity", "Downloads in flight (2)", "library/postgres", "555555555555", "acme", "96.0 MiB/128.0 MiB", " 75%",
		"8.0 MiB/s", "12s", "tools/build", "acme/internal (virtual)", "5.0 MiB/?", "1m15s",
		"Recent pulls (40)", "ci-deploy", "10.0.0.10", "stale", "library/redis@sha256:000000000000")
	mustNotContain(t, s, "an old message")
	// The header's figures.
	mustContain(t, strings.Split(s, "\n")[1], "hits 5m 90% of requests, 94% of bytes", "since start 88%, 90%",
		"310 upstream pulls saved", "Docker Hub 97/100 left (anonymous)")

	// The filter keeps matching downloads and pulls.
	m = press(m, "/", "postgres", "enter")
	s = m.View()
	mustContain(t, s, "Downloads in flight (1)", "Recent pulls (10)", "(filter /postgres)")
	mustNotContain(t, s, "tools/build", "library/redis")
	m = press(m, "/", "esc")

	// G goes to the oldest pull, g back to the newest.
	m = press(m, "G")
	if l := m.pullList; l.cursor != 39 {
		t.Errorf("after G the cursor is on pull %d, want 39", l.cursor)
	}
	m = press(m, "g")
	if l := m.pullList; l.cursor != 0 || l.offset != 0 {
		t.Errorf("after g the cursor is on pull %d (offset %d), want 0", l.cursor, l.offset)
	}

	// d opens the dashboard, esc returns where a was pressed.
	m = press(m, "d")
	mustContain(t, m.View(), "Dashboard", "last 15 minutes", "last 60 minutes", "requests/s", "hit ratio", "from cache",
		"from upstream", "upstream req/s", "Docker Hub left")
	m = press(m, "esc")
	mustContain(t, m.View(), "Group acme", "library/alpine")
}

// On a narrow terminal the charts give way to text: average and peak.
func TestDashboardNarrowIsText(t *testing.T) {
	t.Parallel()
	m := press(newModel(newFake(), 50, 40), "d")
	s := m.View()
	mustContain(t, s, "last 15 minutes  (avg / peak)", "requests/s", "Docker Hub left")
	for _, c := range sparkLevels {
		if strings.ContainsRune(s, c) {
			t.Fatalf("a sparkline on a 50-column terminal:\n%s", s)
		}
	}
	// Docker Hub reported its limit in the second half of the window
	// only (buckets 30 to 59: 150 down to 121 left).
	mustContain(t, s, "136 / 150")
}

func TestSparkline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vals   []float64
		oks    []bool
		lo, hi float64
		width  int
		want   string
	}{
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7}, []bool{true, true, true, true, true, true, true, true}, 0, 7, 8, "▁▂▃▄▅▆▇█"},
		{[]float64{5, 0, 10}, []bool{true, false, true}, 0, 10, 5, "  ▅ █"},
		{[]float64{1, 2, 3}, []bool{true, true, true}, 0, 0, 2, "▁▁"},         // no scale, newest kept
		{[]float64{100, 93, 86}, []bool{true, true, true}, 86, 100, 3, "█▅▁"}, // from a floor
	} {
		if got := sparkline(tc.vals, tc.oks, tc.lo, tc.hi, tc.width); got != tc.want {
			t.Errorf("sparkline(%v, %v, %v..%v, %d) = %q, want %q", tc.vals, tc.oks, tc.lo, tc.hi, tc.width, got, tc.want)
		}
	}
}

// A guest sees no key it cannot use, and the keys it presses say why.
func TestGuestKeyBar(t *testing.T) {
	t.Parallel()
	api := newFake()
	api.user = &adminclient.CurrentUser{Username: "gina"}
	for i := range api.groups {
		api.groups[i].MyRole = "GUEST"
	}
	m := newModel(api, 140, 30)
	footer := func() string { lines := strings.Split(m.View(), "\n"); return lines[len(lines)-1] }
	mustNotContain(t, footer(), "p purge", "e proxy on/off")
	mustContain(t, footer(), "a activity", "d dashboard")
	m = press(m, "p")
	mustContain(t, m.View(), "purging needs the owner role in acme (yours: guest)")
	m = press(m, "enter")
	mustNotContain(t, footer(), "x delete", "p purge", "e proxy on/off")
	m = press(m, "x")
	mustContain(t, m.View(), "deleting an image needs the owner role in acme (yours: guest)")
	if len(api.actions) != 0 {
		t.Errorf("a guest's keys did %v", api.actions)
	}
	// An owner of the group gets the keys back.
	api.groups[1].MyRole = "OWNER"
	m = press(newModel(api, 140, 30), "enter")
	mustContain(t, footer(), "x delete", "p purge", "e proxy on/off")
}

// The recent pulls grow by what is new at each refresh; a server that
// restarted (it numbers its pulls anew) has the list start over.
func TestRecentPullsAcrossARestart(t *testing.T) {
	t.Parallel()
	api := newFake()
	m := press(newModel(api, 140, 40), "a")
	mustContain(t, m.View(), "Recent pulls (40)")
	api.mu.Lock()
	api.pulls = append([]adminclient.RecentPull{{Seq: 41, At: clock, Result: "hit", Kind: "manifest", Image: "library/busybox",
		Reference: "1", GroupPath: ptr("acme"), Client: "10.0.0.7", Principal: "bob"}}, api.pulls...)
	api.mu.Unlock()
	m = press(m, "r")
	mustContain(t, m.View(), "Recent pulls (41)", "library/busybox:1")

	api.mu.Lock()
	api.stats.StartedAt = clock // restarted: pulls 1 to 5 since
	api.pulls = api.pulls[36:]
	api.mu.Unlock()
	m = press(m, "r", "r")
	mustContain(t, m.View(), "Recent pulls (5)")
	mustNotContain(t, m.View(), "library/busybox")
}
