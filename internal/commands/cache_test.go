package commands

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/output"
)

// TestImagesTableFits100Columns: on a terminal cache list's table fits 100
// columns whatever the names, with short digests; --wide shows them whole.
func TestImagesTableFits100Columns(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	digest := "sha256:" + strings.Repeat("ab12", 16)
	images := []adminclient.Image{
		{Image: "library/alpine", Digest: digest, Tags: []string{"3.20", "latest"}, ImageSize: 3 << 20, CachedSize: 3 << 20, ReadAt: now.Add(-59 * time.Minute)},
		{Image: "bitnami/postgresql-repmgr-with-a-very-long-name/and/more", Digest: digest,
			Tags: []string{"15.4.0-debian-11-r0", "15.4.0", "15", "latest-but-longer-still"}, ImageSize: 1023 << 20, CachedSize: 512 << 20,
			Platforms: 12, PlatformsCached: 12, ReadAt: now.Add(-300 * 24 * time.Hour)},
		{Image: "library/busybox", Digest: digest, Tags: []string{}, ImageSize: 2 << 30},
	}
	render := func(wide bool) string {
		var out bytes.Buffer
		p := &output.Printer{Out: &out, TTY: true, Now: func() time.Time { return now }}
		if err := p.PrintTable(imagesTable(p, images, wide)); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	table := render(false)
	for _, line := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
		if n := utf8.RuneCountInString(line); n > 100 {
			t.Errorf("line of %d columns, want at most 100:\n%s", n, line)
		}
	}
	for _, want := range []string{"│ library/alpine ", "3.20, la", "ab12ab12ab12 ", "3.0 MiB", "1023.0 MiB (12/12)", "bitnami/", "…", "│ -  "} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, digest) {
		t.Errorf("table shows the whole digest without --wide:\n%s", table)
	}
	wide := render(true)
	if !strings.Contains(wide, digest) || !strings.Contains(wide, "latest-but-longer-still") {
		t.Errorf("--wide table lacks the whole digest or tags:\n%s", wide)
	}
}
