package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/units"
)

// list is the cursor, scroll offset, filter and sort order of one table.
type list struct {
	cursor, offset int
	filter         string
	bySize         bool
}

// move moves the cursor by delta within n rows, scrolling a window of
// shown rows along.
func (l *list) move(delta, shown int) {
	l.cursor += delta
	l.scroll(shown)
}

// clamp keeps the cursor on one of n rows after the rows changed.
func (l *list) clamp(n int) {
	l.cursor = min(max(l.cursor, 0), max(n-1, 0))
	l.offset = min(l.offset, l.cursor)
}

func (l *list) scroll(shown int) {
	l.cursor = max(l.cursor, 0)
	if l.cursor < l.offset {
		l.offset = l.cursor
	}
	if l.cursor >= l.offset+shown {
		l.offset = l.cursor - shown + 1
	}
}

func matches(filter string, fields ...string) bool {
	if filter == "" {
		return true
	}
	f := strings.ToLower(filter)
	for _, s := range fields {
		if strings.Contains(strings.ToLower(s), f) {
			return true
		}
	}
	return false
}

// visibleGroups are the groups after filter and sort. By name, a subgroup
// follows its parent (paths sort that way).
func (m *Model) visibleGroups() []adminclient.BrowseGroup {
	l := m.groupList
	out := make([]adminclient.BrowseGroup, 0, len(m.groups))
	for _, g := range m.groups {
		if matches(l.filter, g.FullPath) {
			out = append(out, g)
		}
	}
	if l.bySize {
		slices.SortStableFunc(out, func(a, b adminclient.BrowseGroup) int { return cmp.Compare(b.TotalSizeBytes, a.TotalSizeBytes) })
	} else {
		slices.SortStableFunc(out, func(a, b adminclient.BrowseGroup) int {
			return slices.Compare(strings.Split(a.FullPath, "/"), strings.Split(b.FullPath, "/"))
		})
	}
	return out
}

// cachedImage is one row of the images tab: an image and digest with the
// tags it was cached under, as cache list shows it. Its manifest is the
// newest of them cached by tag, or by digest when no tag has it.
type cachedImage struct {
	adminclient.ManifestWithContent
	tags []string
}

// groupImages merges manifests (newest first) into images by image and
// digest, in the order of each image's newest manifest. An image shows its
// newest tag's manifest (its newest manifest when it has no tag) and was
// last pulled when any of its references was.
func groupImages(ms []adminclient.ManifestWithContent) []cachedImage {
	groups := adminclient.ByImage(ms, func(m adminclient.ManifestWithContent) adminclient.Manifest { return m.Manifest })
	out := make([]cachedImage, 0, len(groups))
	for _, g := range groups {
		im := cachedImage{ManifestWithContent: g[0]}
		readAt := g[0].ReadAt
		for _, m := range g {
			if !adminclient.IsDigest(m.Reference) {
				if len(im.tags) == 0 {
					im.ManifestWithContent = m
				}
				im.tags = append(im.tags, m.Reference)
			}
			if m.ReadAt.After(readAt) {
				readAt = m.ReadAt
			}
		}
		im.ReadAt = readAt
		out = append(out, im)
	}
	return out
}

func (m *Model) visibleImages() []cachedImage {
	l := m.imageList
	out := make([]cachedImage, 0, len(m.images))
	for _, im := range m.images {
		if matches(l.filter, append([]string{imageRef(im.Manifest), im.Digest}, im.tags...)...) {
			out = append(out, im)
		}
	}
	if l.bySize {
		slices.SortStableFunc(out, func(a, b cachedImage) int { return cmp.Compare(b.ImageSize, a.ImageSize) })
	} else {
		slices.SortStableFunc(out, func(a, b cachedImage) int {
			return cmp.Or(cmp.Compare(a.Image, b.Image), cmp.Compare(a.Reference, b.Reference))
		})
	}
	return out
}

func (m *Model) visibleBlobs() []adminclient.Blob {
	l := m.blobList
	out := make([]adminclient.Blob, 0, len(m.blobs))
	for _, b := range m.blobs {
		if matches(l.filter, b.Digest) {
			out = append(out, b)
		}
	}
	if l.bySize {
		slices.SortStableFunc(out, func(a, b adminclient.Blob) int { return cmp.Compare(b.Size, a.Size) })
	} else {
		slices.SortStableFunc(out, func(a, b adminclient.Blob) int { return cmp.Compare(a.Digest, b.Digest) })
	}
	return out
}

func (m *Model) selectedGroup() (adminclient.BrowseGroup, bool) {
	gs := m.visibleGroups()
	if len(gs) == 0 {
		return adminclient.BrowseGroup{}, false
	}
	return gs[min(m.groupList.cursor, len(gs)-1)], true
}

func (m *Model) selectedImage() (cachedImage, bool) {
	ims := m.visibleImages()
	if len(ims) == 0 {
		return cachedImage{}, false
	}
	return ims[min(m.imageList.cursor, len(ims)-1)], true
}

// column is one column of a table; a flex column takes the width left.
type column struct {
	title string
	width int
	right bool
	flex  bool
}

// table renders the column titles and the rows in view, the cursor's row
// highlighted (l nil: no cursor), each line exactly width cells wide.
func (m *Model) table(cols []column, rows [][]string, l *list, width, height int) string {
	fixed := 0
	for _, c := range cols {
		if !c.flex {
			fixed += c.width + 1
		}
	}
	for i := range cols {
		if cols[i].flex {
			cols[i].width = max(width-fixed, 8)
		}
	}
	line := func(cells []string) string {
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = fit(cells[i], c.width, c.right)
		}
		return fit(strings.Join(parts, " "), width, false)
	}
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	out := []string{m.st.Column.Render(line(titles))}
	shown := max(height-1, 1)
	sel, offset := -1, 0
	if l != nil {
		l.clamp(len(rows))
		l.scroll(shown)
		sel, offset = l.cursor, l.offset
	}
	for i := offset; i < len(rows) && i < offset+shown; i++ {
		s := line(rows[i])
		if i == sel {
			s = m.st.Selected.Render(s)
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n")
}

// fit pads or cuts s to exactly w cells ("…" marks a cut).
func fit(s string, w int, right bool) string {
	if w <= 0 {
		return ""
	}
	if lipgloss.Width(s) > w {
		r := []rune(s)
		for lipgloss.Width(string(r)) > w-1 && len(r) > 0 {
			r = r[:len(r)-1]
		}
		return string(r) + "…"
	}
	pad := strings.Repeat(" ", w-lipgloss.Width(s))
	if right {
		return pad + s
	}
	return s + pad
}

// size renders a byte count as the CLI does ("2.5 MiB").
func size(n int64) string { return units.Size(n) }

// age renders how long ago t was, compactly: "now", "5m", "3h", "2d".
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	case d < 1000*24*time.Hour:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
	return t.Format("2006-01")
}
