package tui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"

	"github.com/dproxy/dproxy/internal/adminclient"
)

// View renders the whole screen: header, title, body, status, help.
func (m Model) View() string {
	body := m.body()
	switch {
	case m.confirm != nil:
		body = m.dialog(m.confirm.question + "\n\ny: yes   n/esc: no")
	case m.showHelp:
		body = m.help.FullHelpView(m.keys.FullHelp())
	}
	lines := []string{
		fit(m.header(), m.width, false),
		fit(m.figures(), m.width, false),
		fit(m.title(), m.width, false),
		lipgloss.NewStyle().Width(m.width).Height(m.bodyHeight()).MaxHeight(m.bodyHeight()).Render(body),
	}
	lines = append(lines, m.statusLines()...)
	lines = append(lines, m.footer())
	return strings.Join(lines, "\n")
}

func (m *Model) header() string {
	user := "signing in…"
	if m.user != nil {
		user = m.user.Username
	}
	var total adminclient.Bytes
	for _, g := range m.groups {
		total += g.TotalSizeBytes
	}
	auto := ""
	if m.auto {
		auto = " · auto " + m.opts.RefreshEvery.String()
	}
	server := strings.TrimPrefix(strings.TrimPrefix(m.api.Server(), "https://"), "http://")
	rest := " · " + user + " · cache " + size(int64(total)) + auto
	// A long server name is cut before the user and the size.
	if room := max(m.width-len("dproxy ")-lipgloss.Width(rest), 12); lipgloss.Width(server) > room {
		server = fit(server, room, false)
	}
	return m.st.Header.Render("dproxy") + " " + server + rest
}

// figures is the header's second line: the hit ratio by requests and by
// bytes over the last 5 minutes and since the start, the upstream pulls
// saved, and the Docker Hub pulls remaining. It is shortened to fit.
func (m *Model) figures() string {
	hub := "Docker Hub —"
	short := "Hub —"
	if rl, ok := lowestLimit(m.limits); ok {
		hub = fmt.Sprintf("Docker Hub %d/%d left (%s)", rl.Remaining, rl.Limit, rl.Credential)
		short = fmt.Sprintf("Hub %d/%d", rl.Remaining, rl.Limit)
	}
	if m.stats == nil {
		return m.st.Muted.Render("hit ratio —") + " · " + hub
	}
	r5, all := m.stats.Last5Minutes, m.stats.SinceStart
	long := fmt.Sprintf("hits 5m %s of requests, %s of bytes · since start %s, %s · %d upstream pulls saved · %s",
		ratio(r5.HitRatio), ratio(r5.ByteHitRatio), ratio(all.HitRatio), ratio(all.ByteHitRatio), all.UpstreamPullsSaved, hub)
	if lipgloss.Width(long) <= m.width {
		return long
	}
	return fmt.Sprintf("hits 5m %s/%sB · all %s/%sB · saved %d · %s",
		ratio(r5.HitRatio), ratio(r5.ByteHitRatio), ratio(all.HitRatio), ratio(all.ByteHitRatio), all.UpstreamPullsSaved, short)
}

// ratio renders a ratio as a percentage, "—" when there is none.
func ratio(r *float64) string {
	if r == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", *r*100)
}

// lowestLimit picks the credential closest to its limit.
func lowestLimit(ls []adminclient.UpstreamRateLimit) (adminclient.UpstreamRateLimit, bool) {
	if len(ls) == 0 {
		return adminclient.UpstreamRateLimit{}, false
	}
	low := ls[0]
	for _, l := range ls[1:] {
		if l.Remaining < low.Remaining {
			low = l
		}
	}
	return low, true
}

func (m *Model) title() string {
	switch m.screen {
	case screenGroup:
		tabs := []string{"images", "blobs"}
		for i, t := range tabs {
			st := m.st.Tab
			if tab(i) == m.tab {
				st = m.st.TabOn
			}
			tabs[i] = st.Render(t)
		}
		return m.st.Title.Render("Group "+m.groupPath) + "  " + strings.Join(tabs, " ") + m.listNote(m.current())
	case screenDetail:
		return m.st.Title.Render(m.groupPath + " › " + imageRef(m.detail.Manifest))
	case screenActivity:
		return m.st.Title.Render("Activity") + m.st.Muted.Render(m.liveNote()) + m.listNote(&m.pullList)
	case screenDashboard:
		return m.st.Title.Render("Dashboard") + m.st.Muted.Render(m.liveNote())
	}
	return m.st.Title.Render("Groups") + m.listNote(&m.groupList)
}

// liveNote says how often a live screen refreshes.
func (m *Model) liveNote() string {
	if m.opts.LiveEvery <= 0 {
		return "  (r refreshes)"
	}
	return "  (every " + m.opts.LiveEvery.String() + ")"
}

func (m *Model) listNote(l *list) string {
	var notes []string
	if l.filter != "" {
		notes = append(notes, "filter /"+l.filter)
	}
	if l.bySize {
		notes = append(notes, "by size")
	}
	if len(notes) == 0 {
		return ""
	}
	return m.st.Muted.Render("  (" + strings.Join(notes, ", ") + ")")
}

func (m *Model) body() string {
	if m.filtering {
		return m.input.View() + "\n" + m.listBody(m.bodyHeight()-1)
	}
	switch m.screen {
	case screenDetail:
		return m.vp.View()
	case screenActivity:
		return m.activityBody(m.bodyHeight())
	case screenDashboard:
		return m.dashboardBody(m.bodyHeight())
	}
	return m.listBody(m.bodyHeight())
}

func (m *Model) listBody(height int) string {
	now := m.opts.Now()
	switch {
	case m.screen == screenActivity:
		return m.activityBody(height)
	case m.screen == screenGroups:
		if !m.groupsDone {
			return m.st.Muted.Render("loading groups…")
		}
		gs := m.visibleGroups()
		if len(gs) == 0 {
			if len(m.groups) == 0 {
				return "No groups yet — create one with `dproxy group create <path>`\nand enable its proxy with `dproxy group enable <path>`."
			}
			return fmt.Sprintf("No group matches /%s — esc in the filter clears it.", m.groupList.filter)
		}
		// A subgroup is indented under its parent, by its last name, when
		// the parent is listed; else (a member of the subgroup only) it
		// shows its full path.
		depth := make(map[string]int, len(gs))
		rows := make([][]string, len(gs))
		for i, g := range gs {
			name := g.FullPath
			parent, last, nested := cutLast(g.FullPath)
			if d, listed := depth[parent]; nested && listed && !m.groupList.bySize && m.groupList.filter == "" {
				depth[g.FullPath] = d + 1
				name = strings.Repeat("  ", d+1) + last
			} else {
				depth[g.FullPath] = 0
			}
			proxy := "disabled"
			if g.Setting != nil && g.Setting.Enabled {
				proxy = "enabled"
			}
			ttl := "off"
			if g.TTLPolicy != nil && g.TTLPolicy.Enabled {
				ttl = strconv.Itoa(g.TTLPolicy.TTL) + "d"
			}
			rows[i] = []string{name, proxy, strconv.Itoa(g.CachedImageCount), strconv.Itoa(g.BlobCount), size(int64(g.TotalSizeBytes)), ttl}
		}
		vrs := m.virtualRegistries()
		if len(vrs) > 0 {
			height = max(height-len(vrs)-2, 3)
		}
		out := m.table([]column{
			{title: "GROUP", flex: true}, {title: "PROXY", width: 8}, {title: "IMAGES", width: 6, right: true},
			{title: "BLOBS", width: 6, right: true}, {title: "SIZE", width: 10, right: true}, {title: "TTL", width: 4, right: true},
		}, rows, &m.groupList, m.width, height)
		if len(vrs) > 0 {
			out += "\n\n" + m.virtualTable(vrs)
		}
		return out
	case !m.groupDone:
		return m.st.Muted.Render("loading " + m.groupPath + "…")
	case m.tab == tabImages:
		ims := m.visibleImages()
		if len(ims) == 0 {
			if len(m.images) == 0 {
				return "No cached images yet — pull `" + m.group.DirectImagePrefix + "/alpine:latest` to fill the cache."
			}
			return fmt.Sprintf("No image matches /%s — esc in the filter clears it.", m.imageList.filter)
		}
		rows := make([][]string, len(ims))
		for i, im := range ims {
			tags := strings.Join(im.tags, ",")
			if tags == "" {
				tags = "-"
			}
			name := im.Image
			if m.watched(im) {
				name += " (warm)" // kept cached by the warmer: dproxy warm list
			}
			rows[i] = []string{name, tags, strings.TrimPrefix(shortDigest(im.Digest), "sha256:"), kind(im.MediaType),
				size(int64(im.ImageSize)), size(int64(im.CachedSize)), age(now, im.ReadAt)}
		}
		// SIZE is the image's config plus layers (an index: its cached
		// platforms'), CACHED how much of it the group holds.
		return m.table([]column{
			{title: "IMAGE", flex: true}, {title: "TAGS", width: 10}, {title: "DIGEST", width: 12},
			{title: "TYPE", width: 11}, {title: "SIZE", width: 9, right: true}, {title: "CACHED", width: 9, right: true},
			{title: "PULLED", width: 7, right: true},
		}, rows, &m.imageList, m.width, height)
	default:
		bs := m.visibleBlobs()
		if len(bs) == 0 {
			if len(m.blobs) == 0 {
				return "No cached blobs yet — they arrive with the first pull through " + m.group.DirectImagePrefix + "."
			}
			return fmt.Sprintf("No blob matches /%s — esc in the filter clears it.", m.blobList.filter)
		}
		rows := make([][]string, len(bs))
		for i, b := range bs {
			rows[i] = []string{b.Digest, size(int64(b.Size)), age(now, b.ReadAt)}
		}
		return m.table([]column{{title: "DIGEST", flex: true}, {title: "SIZE", width: 10, right: true}, {title: "READ", width: 8, right: true}},
			rows, &m.blobList, m.width, height)
	}
}

// virtualRegistries are the container virtual registries of the groups
// listed, by group then name.
func (m *Model) virtualRegistries() []adminclient.VirtualRegistry {
	var out []adminclient.VirtualRegistry
	for _, g := range m.visibleGroups() {
		out = append(out, g.VirtualRegistries...)
	}
	return out
}

// virtualTable lists virtual registries below the groups: what they are
// called, where they belong, their upstreams in order, where to pull.
func (m *Model) virtualTable(vrs []adminclient.VirtualRegistry) string {
	cols := []column{{title: "VIRTUAL REGISTRY", width: 18}, {title: "GROUP", width: 12}, {title: "UPSTREAMS", width: 20}, {title: "PULL PREFIX", flex: true}}
	rows := make([][]string, len(vrs))
	for i, r := range vrs {
		names := make([]string, len(r.Upstreams))
		for j, u := range r.Upstreams {
			names[j] = u.Name
		}
		rows[i] = []string{r.Name, r.GroupPath, strings.Join(names, ","), r.PullPrefix}
	}
	return m.table(cols, rows, nil, m.width, len(rows)+1)
}

// cutLast splits a group path into its parent's path and its own name.
func cutLast(path string) (parent, name string, nested bool) {
	i := strings.LastIndex(path, "/")
	if i < 0 {
		return "", path, false
	}
	return path[:i], path[i+1:], true
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// kind names a manifest's media type for people.
func kind(mediaType string) string {
	switch {
	case strings.Contains(mediaType, "index"), strings.Contains(mediaType, "manifest.list"):
		return "index"
	case strings.Contains(mediaType, "manifest"):
		return "single-arch"
	}
	return mediaType
}

// refreshDetail renders the open image into the viewport.
func (m *Model) refreshDetail() {
	im, cached := *m.detail, false
	for _, cur := range m.images {
		if cur.ID == im.ID {
			im, cached = cur.ManifestWithContent, true
		}
	}
	m.detail = &im
	if !cached && m.groupDone {
		m.note(imageRef(im.Manifest) + " is no longer cached (deleted or expired); esc goes back")
	}
	var b strings.Builder
	prefix := ""
	if m.group != nil {
		prefix = m.group.DirectImagePrefix + "/"
	}
	ref := im.Image + ":" + im.Reference
	if strings.HasPrefix(im.Reference, "sha256:") {
		ref = im.Image + "@" + im.Reference
	}
	fmt.Fprintf(&b, "Pull reference:\n  %s%s\n\n", prefix, ref)
	// Labels of 8 cells keep a whole digest on one line at 80 columns.
	fmt.Fprintf(&b, "Digest: %s\n", im.Digest)
	fmt.Fprintf(&b, "Type:   %s (%s)\n", im.MediaType, kind(im.MediaType))
	fmt.Fprintf(&b, "Size:   %s (config and layers), %s cached; manifest %s\n",
		size(int64(im.ImageSize)), size(int64(im.CachedSize)), size(int64(im.Size)))
	if im.Platforms > 0 {
		fmt.Fprintf(&b, "        the %d of its %d platforms that are cached\n", im.PlatformsCached, im.Platforms)
	}
	var doc struct {
		Manifests []struct {
			Digest   string `json:"digest"`
			Size     int64  `json:"size"`
			Platform *struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
				Variant      string `json:"variant"`
			} `json:"platform"`
		} `json:"manifests"`
		Config *struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(im.Content), &doc); err == nil {
		if len(doc.Manifests) > 0 {
			b.WriteString("\nPlatforms:\n")
			for _, p := range doc.Manifests {
				name := "unknown"
				if p.Platform != nil {
					name = p.Platform.OS + "/" + p.Platform.Architecture
					if p.Platform.Variant != "" {
						name += "/" + p.Platform.Variant
					}
				}
				mark := markNot
				if m.manifestDigests[p.Digest] {
					mark = markCached
				}
				fmt.Fprintf(&b, "  %s %-16s %s  %9s  %s\n", mark.sign, name, shortDigest(p.Digest), size(int64(p.Size)), mark.word)
			}
		}
		if doc.Config != nil {
			mark := m.blobMark(doc.Config.Digest)
			fmt.Fprintf(&b, "\nConfig:\n  %s %s  %9s  %s\n", mark.sign, shortDigest(doc.Config.Digest), size(int64(doc.Config.Size)), mark.word)
		}
		if len(doc.Layers) > 0 {
			var total, cachedBytes int64
			cached := 0
			b.WriteString("Layers:\n")
			for _, l := range doc.Layers {
				total += l.Size
				mark := m.blobMark(l.Digest)
				if mark == markCached {
					cached++
					cachedBytes += l.Size
				}
				fmt.Fprintf(&b, "  %s %s  %9s  %s\n", mark.sign, shortDigest(l.Digest), size(int64(l.Size)), mark.word)
			}
			fmt.Fprintf(&b, "  %d %s, %s; %d cached (%s)\n", len(doc.Layers), plural(len(doc.Layers), "layer", "layers"), size(int64(total)),
				cached, size(cachedBytes))
		}
	}
	b.WriteString("\nManifest:\n")
	var pretty bytes.Buffer
	if json.Indent(&pretty, []byte(im.Content), "", "  ") == nil {
		b.Write(pretty.Bytes())
	} else {
		b.WriteString(im.Content)
	}
	// Long lines wrap: the pull reference and digests must be readable
	// and copyable whole at any width.
	m.vp.SetContent(lipgloss.NewStyle().Width(m.width).Render(b.String()))
}

// mark is how a layer, config or platform is marked: cached in the
// group, not cached, or unknown (the group's blob list was cut at the
// load limit).
type mark struct{ sign, word string }

var (
	markCached  = mark{"✓", "cached"}
	markNot     = mark{"·", "not cached"}
	markUnknown = mark{"?", "not among the blobs loaded"}
)

// blobMark marks blob d of the open group.
func (m *Model) blobMark(d string) mark {
	switch {
	case m.blobDigests[d]:
		return markCached
	case m.blobsAll:
		return markNot
	}
	return markUnknown
}

func (m *Model) dialog(text string) string {
	widest := 0
	for _, l := range strings.Split(text, "\n") {
		widest = max(widest, lipgloss.Width(l))
	}
	// Width counts the padding, not the border: the box is 2 wider.
	box := m.st.Dialog.Width(max(min(widest+2, m.width-4), 10)).Render(text)
	return lipgloss.Place(m.width, m.bodyHeight(), lipgloss.Center, lipgloss.Center, box)
}

// maxStatusLines bounds how many lines an error may take, so its reason
// shows on a narrow terminal.
const maxStatusLines = 3

// statusLines is the status (or error) wrapped to the width: at least one
// line, at most maxStatusLines.
func (m *Model) statusLines() []string {
	s := m.status
	if m.statusErr {
		s = "error: " + s
	}
	if m.busy > 0 {
		s = m.spin.View() + " " + s
	}
	wrapped := strings.Split(lipgloss.NewStyle().Width(m.width).Render(s), "\n")
	if len(wrapped) > maxStatusLines {
		wrapped = wrapped[:maxStatusLines]
		wrapped[maxStatusLines-1] = fit(wrapped[maxStatusLines-1]+" …", m.width, false)
	}
	st := m.st.Status
	if m.statusErr {
		st = m.st.Error
	}
	for i, l := range wrapped {
		wrapped[i] = st.Render(fit(strings.TrimRight(l, " "), m.width, false))
	}
	return wrapped
}

// footer is the key help of what is on screen. When it does not fit, the
// keys just before `?` and `q` are dropped first: how to get all the keys
// and how to leave always show.
func (m *Model) footer() string {
	k := m.keys
	short := func(b key.Binding, desc string) key.Binding {
		b.SetHelp(b.Help().Key, desc)
		return b
	}
	var keys []key.Binding
	switch {
	case m.filtering:
		return m.st.Help.Render(fit("enter: keep filter · esc: clear filter", m.width, false))
	case m.confirm != nil:
		return m.help.ShortHelpView([]key.Binding{k.Yes, short(k.No, "cancel")})
	case m.showHelp:
		return m.st.Help.Render(fit("any key: close help · q: quit", m.width, false))
	case m.screen == screenGroups:
		keys = []key.Binding{k.Open, k.Activity, k.Dashboard, k.Filter, k.Sort}
		if g, ok := m.selectedGroup(); ok && m.mayChange(g.GroupSummary) {
			keys = append(keys, short(k.Purge, "purge"), short(k.Toggle, "proxy on/off"))
		}
		keys = append(keys, k.Refresh)
	case m.screen == screenGroup:
		other := map[tab]string{tabImages: "blobs", tabBlobs: "images"}[m.tab]
		mayChange := m.group != nil && m.mayChange(m.group.GroupSummary)
		keys = []key.Binding{k.Back, short(k.Tab, other)}
		if m.tab == tabImages {
			keys = append(keys, k.Open)
			if mayChange {
				keys = append(keys, short(k.Delete, "delete"))
			}
		}
		if mayChange {
			keys = append(keys, short(k.Purge, "purge"))
		}
		keys = append(keys, k.Filter, k.Sort)
		if mayChange {
			keys = append(keys, short(k.Toggle, "proxy on/off"))
		}
		keys = append(keys, k.Activity, k.Dashboard, k.Refresh)
	case m.screen == screenDetail:
		keys = []key.Binding{short(k.Up, "scroll"), k.Back}
		if m.group != nil && m.mayChange(m.group.GroupSummary) {
			keys = append(keys, short(k.Delete, "delete"))
		}
		keys = append(keys, k.Activity, k.Dashboard, k.Refresh)
	case m.screen == screenActivity:
		keys = []key.Binding{k.Back, k.Filter, short(k.Top, "top"), k.Dashboard, k.Refresh}
	case m.screen == screenDashboard:
		keys = []key.Binding{k.Back, k.Activity, k.Refresh}
	}
	whole := m.help // unbounded, to see whether all of it fits
	whole.Width = 0
	for {
		all := append(keys[:len(keys):len(keys)], k.Help, k.Quit)
		if view := whole.ShortHelpView(all); lipgloss.Width(view) <= m.width {
			return view
		}
		if len(keys) == 0 {
			return m.help.ShortHelpView(all) // cut with "…"
		}
		keys = keys[:len(keys)-1]
	}
}
