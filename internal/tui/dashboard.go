package tui

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/adminclient"
)

// The dashboard draws the server's per-second counts over the last 15 and
// 60 minutes as sparklines, one bucket a cell. Below sparkMinWidth cells
// they give way to text: the average and the peak of each figure.

// sparkMinWidth is the narrowest sparkline drawn.
const sparkMinWidth = 16

// Label and value columns beside a sparkline.
const (
	sparkLabel = 16
	sparkValue = 27
)

// sparkWidth is how many buckets the dashboard asks for: one a cell of
// the sparkline in its column (two columns from 140 cells on).
func (m *Model) sparkWidth() int {
	w := m.width
	if m.width >= 140 {
		w = (m.width - 3) / 2
	}
	if n := w - sparkLabel - sparkValue - 2; n >= sparkMinWidth {
		return min(n, 600)
	}
	return 60 // text: the average and peak of one bucket a minute (or 15 s)
}

// figure is one row of the dashboard.
type figure struct {
	label string
	// value of a bucket; ok false when it has none (a gap).
	value func(b adminclient.ActivityBucket, secs float64) (v float64, ok bool)
	// show renders a value.
	show func(v float64) string
}

func perSecond(n float64) string { return fmt.Sprintf("%.1f/s", n) }

func percent(v float64) string { return fmt.Sprintf("%.0f%%", v*100) }

func chartRows() []figure {
	count := func(f func(adminclient.ActivityTotals) float64) func(adminclient.ActivityBucket, float64) (float64, bool) {
		return func(b adminclient.ActivityBucket, secs float64) (float64, bool) { return f(b.Totals) / secs, true }
	}
	return []figure{
		{"requests/s", count(func(t adminclient.ActivityTotals) float64 { return float64(t.Requests) }), perSecond},
		{"hit ratio", func(b adminclient.ActivityBucket, _ float64) (float64, bool) {
			if b.Totals.HitRatio == nil {
				return 0, false
			}
			return *b.Totals.HitRatio, true
		}, percent},
		{"from cache", count(func(t adminclient.ActivityTotals) float64 { return float64(t.BytesFromCache) }), func(v float64) string { return rateOf(v) }},
		{"from upstream", count(func(t adminclient.ActivityTotals) float64 { return float64(t.BytesFromUpstream) }), func(v float64) string { return rateOf(v) }},
		{"upstream req/s", count(func(t adminclient.ActivityTotals) float64 { return float64(t.UpstreamRequests) }), perSecond},
		{"Docker Hub left", func(b adminclient.ActivityBucket, _ float64) (float64, bool) {
			if b.DockerHubRemaining == nil {
				return 0, false
			}
			return float64(*b.DockerHubRemaining), true
		}, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	}
}

// dashboardBody renders both windows, side by side from 140 cells on.
func (m *Model) dashboardBody(height int) string {
	if !m.dashDone {
		return m.st.Muted.Render("loading the charts…")
	}
	if m.width >= 140 {
		colW := (m.width - 3) / 2
		left := strings.Split(m.window("last 15 minutes", m.last15, 15, colW), "\n")
		right := strings.Split(m.window("last 60 minutes", m.last60, 60, colW), "\n")
		lines := make([]string, max(len(left), len(right)))
		for i := range lines {
			l, r := "", ""
			if i < len(left) {
				l = left[i]
			}
			if i < len(right) {
				r = right[i]
			}
			lines[i] = fit(l, colW, false) + " │ " + r
		}
		return strings.Join(lines, "\n")
	}
	return m.window("last 15 minutes", m.last15, 15, m.width) + "\n\n" + m.window("last 60 minutes", m.last60, 60, m.width)
}

// window renders one window's figures in width cells.
func (m *Model) window(title string, bs []adminclient.ActivityBucket, minutes, width int) string {
	secs := float64(minutes*60) / float64(max(len(bs), 1))
	figs := chartRows()
	spark := width - sparkLabel - sparkValue - 2
	var b strings.Builder
	b.WriteString(m.st.Title.Render(title))
	if spark < sparkMinWidth {
		// Text: the average and the peak.
		b.WriteString(m.st.Muted.Render("  (avg / peak)"))
		for _, f := range figs {
			avg, peak, n := 0.0, math.Inf(-1), 0
			for _, bk := range bs {
				if v, ok := f.value(bk, secs); ok {
					avg += v
					peak = max(peak, v)
					n++
				}
			}
			val := "-"
			if n > 0 {
				val = f.show(avg/float64(n)) + " / " + f.show(peak)
			}
			b.WriteString("\n" + fit(f.label, sparkLabel, false) + fit(val, width-sparkLabel, false))
		}
		return b.String()
	}
	b.WriteString(m.st.Muted.Render(fmt.Sprintf("  (%s a cell; now / peak)", duration(secsDuration(secs)))))
	// Bytes from cache and from upstream share one scale, to compare.
	var bytesPeak float64
	for _, f := range figs[2:4] {
		for _, bk := range bs {
			v, _ := f.value(bk, secs)
			bytesPeak = max(bytesPeak, v)
		}
	}
	for i, f := range figs {
		vals := make([]float64, len(bs))
		oks := make([]bool, len(bs))
		low, peak, last, lastOK := math.Inf(1), 0.0, 0.0, false
		for j, bk := range bs {
			vals[j], oks[j] = f.value(bk, secs)
			if oks[j] {
				low, peak = min(low, vals[j]), max(peak, vals[j])
				last, lastOK = vals[j], true
			}
		}
		lo, hi := 0.0, peak
		switch i {
		case 1: // a ratio: 0 to 100%
			hi = 1
		case 2, 3:
			hi = bytesPeak
		case 5: // pulls left: what matters is how they go down
			lo = low
		}
		val := "-"
		if lastOK {
			val = f.show(last) + " / " + f.show(peak)
		}
		line := m.st.Spark.Render(sparkline(vals, oks, lo, hi, spark))
		if i == 3 {
			line = m.st.SparkAlt.Render(sparkline(vals, oks, lo, hi, spark))
		}
		b.WriteString("\n" + fit(f.label, sparkLabel, false) + line + "  " + fit(val, sparkValue, true))
	}
	return b.String()
}

func secsDuration(secs float64) time.Duration { return time.Duration(secs * float64(time.Second)) }

// sparkLevels are the cells of a sparkline, lowest first.
var sparkLevels = []rune("▁▂▃▄▅▆▇█")

// sparkline draws vals (ok false: a gap) from lo (the lowest cell) to hi
// (the highest) in exactly width cells, the newest at the right.
func sparkline(vals []float64, oks []bool, lo, hi float64, width int) string {
	cells := make([]rune, width)
	for i := range cells {
		cells[i] = ' '
	}
	off := width - len(vals)
	for j, v := range vals {
		if off+j < 0 || !oks[j] {
			continue
		}
		lvl := 0
		if hi > lo {
			lvl = int(math.Round((v - lo) / (hi - lo) * float64(len(sparkLevels)-1)))
		}
		cells[off+j] = sparkLevels[min(max(lvl, 0), len(sparkLevels)-1)]
	}
	return string(cells)
}
