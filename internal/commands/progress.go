package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/progress"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/units"
)

// redrawEvery limits how often the progress line is redrawn on a terminal.
const redrawEvery = 100 * time.Millisecond

// progressMeter shows on stderr how far a long copy got, by bytes. On a
// terminal one line is redrawn in place: a bar, the percentage, bytes done
// of the total, the rate and the time left; at the end it is cleared and
// replaced by one last line saying what happened, an interruption
// included. Off a terminal it prints a plain line at each whole percent,
// and a last line only when the copy failed.
type progressMeter struct {
	w     io.Writer
	verb  string // "backup", "restore", "verify"
	tty   bool
	width int
	now   func() time.Time

	started bool
	start   time.Time
	drawnAt time.Time
	drawn   bool // a line is on screen, not yet ended
	pct     int  // last percentage printed off a terminal
	last    lifecycle.Progress
	bar     progress.Model
}

// newProgressMeter returns a meter on ios.ErrOut; now is the clock of the
// rate and the time left (nil: time.Now).
func newProgressMeter(ios *cmdutil.IOStreams, verb string, now func() time.Time) *progressMeter {
	if now == nil {
		now = time.Now
	}
	return &progressMeter{w: ios.ErrOut, verb: verb, tty: ios.IsStderrTTY(), width: ios.TerminalWidth(), now: now, pct: -1,
		bar: progress.New(progress.WithDefaultGradient(), progress.WithoutPercentage())}
}

// update records a report of the copy and shows it.
func (m *progressMeter) update(p lifecycle.Progress) {
	now := m.now()
	if !m.started {
		m.started, m.start = true, now
	}
	m.last = p
	pct := percent(p)
	if !m.tty {
		if pct != m.pct {
			m.pct = pct
			fmt.Fprintf(m.w, "%s: %d%% (%s of %s)\n", m.verb, pct, units.Size(p.Done), units.Size(p.Total))
		}
		return
	}
	if m.drawn && now.Sub(m.drawnAt) < redrawEvery && p.Done < p.Total {
		return
	}
	m.drawnAt, m.drawn = now, true
	// \r and "erase the line": a shorter line leaves nothing of the last.
	fmt.Fprint(m.w, "\r\x1b[2K"+m.line(now))
}

// line is the terminal line: verb, bar, percentage, bytes, rate and time
// left, narrower than the terminal: the bar shrinks first, then goes,
// then the parts at the end.
func (m *progressMeter) line(now time.Time) string {
	p := m.last
	parts := []string{fmt.Sprintf("%3d%%", percent(p)), units.Size(p.Done) + " / " + units.Size(p.Total)}
	if rate, ok := m.rate(now); ok {
		parts = append(parts, units.Rate(rate))
		if rate > 0 && p.Total > p.Done {
			left := time.Duration(float64(p.Total-p.Done) / rate * float64(time.Second))
			parts = append(parts, units.Duration(left.Round(time.Second))+" left")
		}
	}
	fits := m.width - 1 // the last column stays free, or the terminal may wrap
	text := m.verb + " " + parts[0]
	for _, part := range parts[1:] {
		if len(text)+2+len(part) > fits {
			break
		}
		text += "  " + part
	}
	if room := fits - len(text) - 1; room >= 10 {
		m.bar.Width = min(room, 40)
		return m.verb + " " + m.bar.ViewAs(fraction(p)) + strings.TrimPrefix(text, m.verb)
	}
	return text
}

// rate is the mean rate since the first report, once a second has passed.
func (m *progressMeter) rate(now time.Time) (float64, bool) {
	elapsed := now.Sub(m.start)
	if elapsed < time.Second {
		return 0, false
	}
	return float64(m.last.Done) / elapsed.Seconds(), true
}

// finish ends the meter: on a terminal the line is replaced by the
// outcome; a failure says where the copy stopped, as an interruption when
// ctx was cancelled.
func (m *progressMeter) finish(ctx context.Context, err error) {
	if m.drawn {
		fmt.Fprint(m.w, "\r\x1b[2K")
		m.drawn = false
	}
	if !m.started {
		return // nothing was copied or shown: the error says it all
	}
	p := m.last
	where := fmt.Sprintf("at %d%% (%s of %s)", percent(p), units.Size(p.Done), units.Size(p.Total))
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintf(m.w, "%s interrupted %s\n", m.verb, where)
	case err != nil:
		fmt.Fprintf(m.w, "%s failed %s\n", m.verb, where)
	case m.tty:
		took := m.now().Sub(m.start).Round(time.Second)
		line := fmt.Sprintf("%s: %s in %s", m.verb, units.Size(p.Done), units.Duration(took))
		if rate, ok := m.rate(m.now()); ok {
			line += " (" + units.Rate(rate) + ")"
		}
		fmt.Fprintln(m.w, line)
	}
}

func fraction(p lifecycle.Progress) float64 {
	if p.Total <= 0 {
		return 1
	}
	return min(1, float64(p.Done)/float64(p.Total))
}

// percent is the whole percentage done: 100 only when everything is.
func percent(p lifecycle.Progress) int {
	if p.Total > 0 && p.Done < p.Total {
		return min(99, int(fraction(p)*100))
	}
	return 100
}
