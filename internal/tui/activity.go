package tui

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/dproxy/dproxy/internal/adminclient"
)

// The activity screen (downloads in flight, recent pulls), the dashboard
// (sparklines) and the header's figures refresh every Options.LiveEvery
// while one of those screens is open; the other screens follow
// Options.RefreshEvery.

type (
	// activityMsg is one refresh of the activity screen, of the pulls
	// after the one numbered after.
	activityMsg struct {
		snap  adminclient.ActivitySnapshot
		after adminclient.Seq
		err   error
	}
	dashboardMsg struct {
		snap adminclient.DashboardSnapshot
		err  error
	}
	// liveMsg is a tick of the live refresh of generation gen.
	liveMsg struct{ gen int }
)

// recentPullsShown bounds the recent pulls asked for.
const recentPullsShown = 300

// live reports whether the open screen refreshes live.
func (m *Model) live() bool { return m.screen == screenActivity || m.screen == screenDashboard }

// scheduleLive asks for the next live tick, unless live refresh is off.
func (m *Model) scheduleLive() tea.Cmd {
	if !m.live() || m.opts.LiveEvery <= 0 {
		return nil
	}
	gen := m.liveGen
	return tea.Tick(m.opts.LiveEvery, func(time.Time) tea.Msg { return liveMsg{gen: gen} })
}

// loadLive asks, in one request, for what the open live screen shows and
// the header's figures. It does not spin the spinner: it runs all the time.
func (m *Model) loadLive() tea.Cmd {
	api := m.api
	m.liveBusy++
	if m.screen == screenDashboard {
		n := m.sparkWidth()
		return m.call(func(ctx context.Context) tea.Msg {
			snap, err := api.DashboardSnapshot(ctx, n)
			if err != nil {
				err = fmt.Errorf("read the activity of the last hour: %w", err)
			}
			return dashboardMsg{snap: snap, err: err}
		})
	}
	after := m.lastSeq
	return m.call(func(ctx context.Context) tea.Msg {
		snap, err := api.ActivitySnapshot(ctx, recentPullsShown, after)
		if err != nil {
			err = fmt.Errorf("read the activity: %w", err)
		}
		return activityMsg{snap: snap, after: after, err: err}
	})
}

// addPulls puts the pulls of a refresh before those shown, newest first,
// keeping recentPullsShown. A server that restarted numbers its pulls
// anew: then the list starts again.
func (m *Model) addPulls(msg activityMsg) {
	restarted := m.stats != nil && !msg.snap.Stats.StartedAt.Equal(m.stats.StartedAt)
	switch {
	case restarted:
		m.pulls, m.lastSeq = nil, 0
		return // the next refresh asks for all
	case msg.after != m.lastSeq:
		return // an answer to an older question
	}
	m.pulls = append(msg.snap.Pulls, m.pulls...)
	m.pulls = m.pulls[:min(len(m.pulls), recentPullsShown)]
	if len(m.pulls) > 0 {
		m.lastSeq = max(m.lastSeq, m.pulls[0].Seq)
	}
}

// liveDone counts a live call that ended; a failure shows in the status
// line, and the next success clears it.
func (m *Model) liveDone(err error) {
	m.liveBusy = max(m.liveBusy-1, 0)
	switch {
	case err != nil:
		m.fail(err)
		m.liveFailed = true
	case m.liveFailed && m.liveBusy == 0:
		m.liveFailed = false
		m.note("")
	}
}

// openLive switches to a live screen and starts its refresh.
func (m *Model) openLive(s screen) tea.Cmd {
	if m.screen == s {
		return nil
	}
	if !m.live() {
		m.back = m.screen
	}
	m.setScreen(s)
	m.liveGen++
	return tea.Batch(m.loadLive(), m.scheduleLive())
}

// leaveLive returns to the screen the live one was opened from.
func (m *Model) leaveLive() tea.Cmd {
	m.setScreen(m.back)
	m.liveGen++ // stops the ticks
	if m.screen == screenDetail && m.detail != nil {
		m.refreshDetail()
	}
	return nil
}

// visibleDownloads are the downloads after the filter.
func (m *Model) visibleDownloads() []adminclient.ActiveDownload {
	f := m.pullList.filter
	out := make([]adminclient.ActiveDownload, 0, len(m.downloads))
	for _, d := range m.downloads {
		if matches(f, append([]string{d.Image, d.Digest, deref(d.VirtualRegistry)}, d.GroupPaths...)...) {
			out = append(out, d)
		}
	}
	return out
}

// visiblePulls are the recent pulls after the filter, newest first.
func (m *Model) visiblePulls() []adminclient.RecentPull {
	f := m.pullList.filter
	out := make([]adminclient.RecentPull, 0, len(m.pulls))
	for _, p := range m.pulls {
		if matches(f, p.Image, p.Reference, p.Result, p.Client, p.Principal, pullWhere(p)) {
			out = append(out, p)
		}
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// pullWhere names the group or virtual registry a pull went through.
func pullWhere(p adminclient.RecentPull) string {
	if p.VirtualRegistry != nil {
		return deref(p.VirtualRegistryGroup) + "/" + *p.VirtualRegistry + " (virtual)"
	}
	return deref(p.GroupPath)
}

// downloadWhere names the groups or virtual registry a download serves.
func downloadWhere(d adminclient.ActiveDownload) string {
	if d.VirtualRegistry != nil {
		return deref(d.VirtualRegistryGroup) + "/" + *d.VirtualRegistry + " (virtual)"
	}
	return strings.Join(d.GroupPaths, ",")
}

// activityBody renders the downloads in flight above the recent pulls.
func (m *Model) activityBody(height int) string {
	if !m.activityDone {
		return m.st.Muted.Render("loading activity…")
	}
	now := m.opts.Now()
	dls := m.visibleDownloads()
	var b strings.Builder
	b.WriteString(m.st.Title.Render(fmt.Sprintf("Downloads in flight (%d)", len(dls))) + "\n")
	used := 1
	if len(dls) == 0 {
		b.WriteString(m.st.Muted.Render(fit("none: every pull is served from the cache, or nothing is being pulled", m.width, false)) + "\n")
		used++
	} else {
		// At most half of the body goes to the downloads.
		shown := min(len(dls), max((height-4)/2, 1))
		b.WriteString(m.downloadTable(dls[:shown], now) + "\n")
		used += shown + 1
		if shown < len(dls) {
			b.WriteString(m.st.Muted.Render(fmt.Sprintf("… and %d more; / filters", len(dls)-shown)) + "\n")
			used++
		}
	}
	pulls := m.visiblePulls()
	b.WriteString(m.st.Title.Render(fmt.Sprintf("Recent pulls (%d)", len(pulls))) + "\n")
	used++
	rest := max(height-used, 2)
	if len(pulls) == 0 {
		msg := "none yet: pulls show here as clients make them"
		if m.pullList.filter != "" {
			msg = fmt.Sprintf("no pull matches /%s — esc in the filter clears it", m.pullList.filter)
		}
		b.WriteString(m.st.Muted.Render(fit(msg, m.width, false)))
		return b.String()
	}
	rows := make([][]string, len(pulls))
	for i, p := range pulls {
		ref := p.Image + ":" + p.Reference
		if adminclient.IsDigest(p.Reference) {
			ref = p.Image + "@" + shortDigest(p.Reference)
		}
		rows[i] = []string{p.At.In(now.Location()).Format("15:04:05"), p.Result, p.Kind, ref, pullWhere(p), p.Client, p.Principal}
	}
	cols := []column{{title: "TIME", width: 8}, {title: "RESULT", width: 6}, {title: "KIND", width: 8}, {title: "IMAGE", flex: true},
		{title: "WHERE", width: 24}, {title: "CLIENT", width: 15}, {title: "WHO", width: 12}}
	if m.width < 100 {
		cols = []column{{title: "TIME", width: 8}, {title: "RESULT", width: 6}, {title: "IMAGE", flex: true},
			{title: "WHERE", width: 10}, {title: "CLIENT", width: 15}, {title: "WHO", width: 8}}
		for i, r := range rows {
			rows[i] = append(r[:2:2], r[3:]...)
		}
	}
	b.WriteString(m.table(cols, rows, &m.pullList, m.width, rest))
	return b.String()
}

// downloadTable renders downloads with a progress bar each; below 120
// cells without the digest, with a shorter bar and compact sizes.
func (m *Model) downloadTable(dls []adminclient.ActiveDownload, now time.Time) string {
	wide := m.width >= 120
	barWidth, sz := 6, compactSize
	if wide {
		barWidth, sz = 20, size
	}
	rows := make([][]string, len(dls))
	for i, d := range dls {
		elapsed := now.Sub(d.StartedAt)
		rate := "-"
		if elapsed > 0 {
			rate = sz(int64(float64(d.Bytes)/elapsed.Seconds())) + "/s"
		}
		total, progress := "?", m.bar(-1, barWidth)
		if d.TotalBytes != nil {
			total = sz(int64(*d.TotalBytes))
			progress = m.bar(float64(d.Bytes)/float64(max(*d.TotalBytes, 1)), barWidth)
		}
		rows[i] = []string{d.Image, strings.TrimPrefix(shortDigest(d.Digest), "sha256:"), downloadWhere(d), progress,
			sz(int64(d.Bytes)) + "/" + total, rate, strconv.Itoa(d.Clients), duration(elapsed)}
	}
	cols := []column{{title: "IMAGE", flex: true}, {title: "DIGEST", width: 12}, {title: "WHERE", width: 24},
		{title: "PROGRESS", width: barWidth + 5}, {title: "BYTES", width: 19, right: true}, {title: "RATE", width: 12, right: true},
		{title: "CLIENTS", width: 7, right: true}, {title: "ELAPSED", width: 7, right: true}}
	if !wide {
		cols = append(cols[:1:1], cols[2:]...)
		cols[1].width, cols[3].width, cols[4].width = 10, 12, 8
		for i, r := range rows {
			rows[i] = append(r[:1:1], r[2:]...)
		}
	}
	return m.table(cols, rows, nil, m.width, len(rows)+1)
}

// compactSize is size without the space and "iB": "96.0M", "512B".
func compactSize(n int64) string {
	return strings.TrimSuffix(strings.ReplaceAll(size(n), " ", ""), "iB")
}

// bar renders a fraction (negative: unknown) as a bar and a percentage.
func (m *Model) bar(frac float64, width int) string {
	if frac < 0 {
		return strings.Repeat("░", width) + "    ?"
	}
	frac = min(frac, 1)
	full := int(frac * float64(width))
	return m.st.Bar.Render(strings.Repeat("█", full)) + strings.Repeat("░", width-full) + fmt.Sprintf(" %3d%%", int(frac*100))
}

// rateOf renders bytes per second compactly.
func rateOf(bps float64) string { return size(int64(bps)) + "/s" }

// duration renders an elapsed time: "42s", "3m05s", "2h10m".
func duration(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}
