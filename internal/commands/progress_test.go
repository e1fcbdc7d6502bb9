package commands

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/lifecycle"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }
func ttyIO(width int) (*cmdutil.IOStreams, *bytes.Buffer) {
	ios, _, errOut := cmdutil.Test("")
	yes := true
	ios.StderrTTY, ios.Width = &yes, &width
	return ios, errOut
}

// colours are the SGR sequences of the bar's colours; the line-erase
// sequence is kept.
var colours = regexp.MustCompile("\x1b\\[[0-9;]*m")

// frames splits what a meter drew on a terminal into the frames the eye
// sees: each redraw starts with \r and erases the line.
func frames(out string) []string {
	out = colours.ReplaceAllString(out, "")
	var fs []string
	for _, f := range strings.Split(out, "\r\x1b[2K") {
		if f != "" {
			fs = append(fs, f)
		}
	}
	return fs
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

const mib = 1 << 20

// On a terminal the meter redraws one line, by bytes, with rate and time
// left, at most every 100 ms, never wider than the terminal, and ends with
// one line saying what was done.
func TestProgressMeterOnATerminal(t *testing.T) {
	t.Parallel()
	for _, width := range []int{100, 60, 30} {
		ios, errOut := ttyIO(width)
		clock := newFakeClock()
		m := newProgressMeter(ios, "backup", clock.now)
		total := int64(1000 * mib)
		m.update(lifecycle.Progress{Total: total})
		for _, done := range []int64{200, 450, 451, 900, 1000} {
			if done == 451 {
				clock.add(50 * time.Millisecond) // within 100 ms: not redrawn
			} else {
				clock.add(2 * time.Second)
			}
			m.update(lifecycle.Progress{Done: done * mib, Total: total})
		}
		m.finish(context.Background(), nil)
		var b strings.Builder
		for _, f := range frames(errOut.String()) {
			if n := len([]rune(f)); !strings.HasSuffix(f, "\n") && n >= width {
				t.Errorf("width %d: a %d-column line is redrawn: %q", width, n, f)
			}
			b.WriteString(f + "|\n")
		}
		golden(t, "progress-tty-"+strconv.Itoa(width)+".golden", b.String())
	}
}

// An interrupted copy ends with a line saying where it stopped, on a
// terminal and off one, never 100%.
func TestProgressMeterInterrupted(t *testing.T) {
	t.Parallel()
	for _, tty := range []bool{true, false} {
		ios, errOut := ttyIO(80)
		ios.StderrTTY = &tty
		clock := newFakeClock()
		m := newProgressMeter(ios, "backup", clock.now)
		m.update(lifecycle.Progress{Total: 1000 * mib})
		clock.add(time.Second)
		m.update(lifecycle.Progress{Done: 450 * mib, Total: 1000 * mib})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m.finish(ctx, context.Canceled)
		out := colours.ReplaceAllString(errOut.String(), "")
		if !strings.HasSuffix(out, "backup interrupted at 45% (450.0 MiB of 1000.0 MiB)\n") {
			t.Errorf("tty %v: the meter ends with %q", tty, out)
		}
		if strings.Contains(out, "100%") {
			t.Errorf("tty %v: an interrupted copy showed 100%%: %q", tty, out)
		}
		if !tty && (strings.Contains(out, "\r") || strings.Contains(out, "\x1b")) {
			t.Errorf("off a terminal the meter drew: %q", out)
		}
	}
	// A failure is a failure, not an interruption.
	ios, errOut := ttyIO(80)
	m := newProgressMeter(ios, "restore", newFakeClock().now)
	m.update(lifecycle.Progress{Done: 10, Total: 40})
	m.finish(context.Background(), errors.New("archive damaged"))
	if out := errOut.String(); !strings.HasSuffix(out, "restore failed at 25% (10 B of 40 B)\n") {
		t.Errorf("a failed restore ends with %q", out)
	}
}

// Off a terminal the meter prints a plain line at each whole percent.
func TestProgressMeterOffATerminal(t *testing.T) {
	t.Parallel()
	ios, errOut := ttyIO(80)
	no := false
	ios.StderrTTY = &no
	m := newProgressMeter(ios, "verify", newFakeClock().now)
	for _, done := range []int64{0, 1, 2, 3, 250, 1000} {
		m.update(lifecycle.Progress{Done: done, Total: 1000})
	}
	m.finish(context.Background(), nil)
	want := "verify: 0% (0 B of 1000 B)\nverify: 25% (250 B of 1000 B)\nverify: 100% (1000 B of 1000 B)\n"
	if got := errOut.String(); got != want {
		t.Errorf("off a terminal:\n%s\nwant\n%s", got, want)
	}
}

// Ctrl-C during a backup stops it mid-blob: the meter says where, no
// archive is left, and the error says it was interrupted.
func TestBackupInterrupted(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "backup.key")
	t.Parallel()
	d := newDataDir(t)
	d.blob(t, 8*mib, true)
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ios, _, _ := cmdutil.Test("")
	// The first report past 0% plays the operator's Ctrl-C.
	ctrlC := &watchWriter{fire: func(line string) bool {
		return strings.HasPrefix(line, "backup: ") && !strings.HasPrefix(line, "backup: 0%")
	}, then: cancel}
	ios.ErrOut = ctrlC
	err := runBackupCreate(ctx, &backupCreateOptions{KeyFile: keyPath, IO: ios, DataDir: d.dir, File: archive, Now: time.Now})
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "no archive was written") {
		t.Fatalf("interrupted backup: %v", err)
	}
	if _, serr := os.Stat(archive); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("an interrupted backup left %s: %v", archive, serr)
	}
	out := ctrlC.buf.String()
	if !regexp.MustCompile(`\nbackup interrupted at [1-9][0-9]?% \([0-9.]+ [KM]iB of 8\.0 MiB\)\n$`).MatchString(out) {
		t.Errorf("the meter did not end with where the backup stopped:\n%s", out)
	}
	if strings.Contains(out, "100%") {
		t.Errorf("an interrupted backup showed 100%%:\n%s", out)
	}
}

// watchWriter records what is written and calls then once, when a line
// for which fire is true was written.
type watchWriter struct {
	buf   bytes.Buffer
	fire  func(line string) bool
	then  func()
	fired bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if !w.fired && w.fire(string(p)) {
		w.fired = true
		w.then()
	}
	return len(p), nil
}
