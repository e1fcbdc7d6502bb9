package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/spinner"
	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/dproxy/dproxy/internal/adminclient"
)

type screen int

const (
	screenGroups screen = iota
	screenGroup
	screenDetail
	screenActivity
	screenDashboard
)

type tab int

const (
	tabImages tab = iota
	tabBlobs
)

// Messages: every call to the server ends in one of these.
type (
	headerMsg struct {
		user   adminclient.CurrentUser
		limits []adminclient.UpstreamRateLimit
		stats  *adminclient.CacheActivity
		err    error
	}
	groupsMsg struct {
		groups []adminclient.BrowseGroup
		err    error
	}
	groupMsg struct {
		path   string
		group  adminclient.Group
		images []adminclient.ManifestWithContent
		blobs  []adminclient.Blob
		warm   map[string]bool // watched image:tag, upstream names (warmKey)
		err    error
	}
	// actionMsg ends a confirmed action: done says what happened.
	actionMsg struct {
		done string
		err  error
	}
	// refreshMsg is an auto-refresh tick of generation gen.
	refreshMsg struct{ gen int }
)

// confirmation is a pending action: the question names what will happen.
type confirmation struct {
	question string
	run      func(ctx context.Context) actionMsg
	// leaveDetail returns to the group after the action (the image is gone).
	leaveDetail bool
}

// Model is the browser. The zero value is not usable; call New.
type Model struct {
	api  API
	opts Options
	keys KeyMap
	st   Styles
	help help.Model

	width, height int

	user       *adminclient.CurrentUser
	limits     []adminclient.UpstreamRateLimit
	groups     []adminclient.BrowseGroup
	groupsDone bool // the first groups answer arrived

	screen    screen
	groupPath string
	group     *adminclient.Group
	images    []cachedImage
	warm      map[string]bool // the open group's watched tags (warmKey)
	blobs     []adminclient.Blob
	groupDone bool // the open group's first answer arrived
	tab       tab
	detail    *adminclient.ManifestWithContent
	vp        viewport.Model
	// manifestDigests are the digests of the open group's cached
	// manifests; blobsAll says m.blobs holds every blob of the group
	// (not cut at Options.Limit), so a missing one is not cached.
	manifestDigests map[string]bool
	blobDigests     map[string]bool
	blobsAll        bool

	// The live screens: back is where esc returns to.
	back         screen
	stats        *adminclient.CacheActivity
	downloads    []adminclient.ActiveDownload
	pulls        []adminclient.RecentPull
	activityDone bool
	last15       []adminclient.ActivityBucket
	last60       []adminclient.ActivityBucket
	dashDone     bool
	pullList     list
	lastSeq      adminclient.Seq // the newest pull shown
	liveGen      int
	liveBusy     int  // live calls in flight
	liveFailed   bool // the status shows a live call's error

	groupList, imageList, blobList list
	filtering                      bool
	input                          textinput.Model

	confirm   *confirmation
	spin      spinner.Model
	busy      int
	status    string
	statusErr bool
	auto      bool
	gen       int
	showHelp  bool
}

// New returns the browser's model; Init starts loading.
func New(api API, r *lipgloss.Renderer, opts Options) Model {
	opts = opts.withDefaults()
	st := NewStyles(r, opts.NoColor)
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "filter"
	in.Cursor.SetMode(cursor.CursorStatic) // no blinking: nothing redraws while idle
	h := help.New()
	h.Styles.ShortKey, h.Styles.ShortDesc, h.Styles.FullKey, h.Styles.FullDesc = st.Help, st.Help, st.Header, st.Help
	return Model{
		api: api, opts: opts, keys: DefaultKeyMap(), st: st, help: h,
		width: 80, height: 24,
		vp:     viewport.New(80, 18),
		input:  in,
		spin:   spinner.New(spinner.WithSpinner(spinner.Line), spinner.WithStyle(st.Muted)),
		auto:   opts.RefreshEvery > 0,
		busy:   2, // Init's header and groups calls
		screen: map[bool]screen{true: screenActivity, false: screenGroups}[opts.StartActivity],
	}
}

// setScreen opens screen s with a clear status line.
func (m *Model) setScreen(s screen) {
	m.screen = s
	m.status, m.statusErr, m.liveFailed = "", false, false
	m.filtering = false
	m.input.Blur()
	m.vp.Height = m.bodyHeight()
}

// Init loads the header and the groups and starts auto-refresh.
func (m Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.loadHeader(), m.loadGroups(), m.spin.Tick, m.scheduleRefresh()}
	if m.opts.StartActivity {
		cmds = append(cmds, m.loadLive(), m.scheduleLive())
	}
	return tea.Batch(cmds...)
}

// Update handles a message; it never blocks.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	return m, cmd
}

func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.SetSize(msg.Width, msg.Height)
		return nil
	case spinner.TickMsg:
		if m.busy == 0 {
			return nil // stop ticking until the next call
		}
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return cmd
	case headerMsg:
		m.done()
		if msg.err != nil {
			m.fail(msg.err)
			return nil
		}
		m.user, m.limits = &msg.user, msg.limits
		if msg.stats != nil {
			m.stats = msg.stats
		}
		return nil
	case activityMsg:
		m.liveDone(msg.err)
		if msg.err == nil {
			m.addPulls(msg)
			m.downloads, m.activityDone = msg.snap.Downloads, true
			m.stats, m.limits = &msg.snap.Stats, msg.snap.Limits
		}
		return nil
	case dashboardMsg:
		m.liveDone(msg.err)
		if msg.err == nil {
			m.last15, m.last60, m.dashDone = msg.snap.Last15, msg.snap.Last60, true
			m.stats, m.limits = &msg.snap.Stats, msg.snap.Limits
		}
		return nil
	case liveMsg:
		if msg.gen != m.liveGen || !m.live() {
			return nil
		}
		if m.liveBusy > 0 { // the server is slower than the ticks: skip one
			return m.scheduleLive()
		}
		return tea.Batch(m.loadLive(), m.scheduleLive())
	case groupsMsg:
		m.done()
		if msg.err != nil {
			m.fail(msg.err)
			return nil
		}
		m.groups, m.groupsDone = msg.groups, true
		m.groupList.clamp(len(m.visibleGroups()))
		return nil
	case groupMsg:
		m.done()
		if msg.path != m.groupPath || m.screen == screenGroups {
			return nil // an answer for a group no longer open
		}
		if msg.err != nil {
			m.fail(msg.err)
			return nil
		}
		g := msg.group
		m.group, m.images, m.blobs, m.warm, m.groupDone = &g, groupImages(msg.images), msg.blobs, msg.warm, true
		m.blobsAll = len(msg.blobs) < m.opts.Limit
		m.blobDigests = make(map[string]bool, len(msg.blobs))
		for _, b := range msg.blobs {
			m.blobDigests[b.Digest] = true
		}
		m.manifestDigests = make(map[string]bool, len(msg.images))
		for _, im := range msg.images {
			m.manifestDigests[im.Digest] = true
		}
		m.imageList.clamp(len(m.visibleImages()))
		m.blobList.clamp(len(m.visibleBlobs()))
		if m.screen == screenDetail && m.detail != nil {
			m.refreshDetail()
		}
		return nil
	case actionMsg:
		m.done()
		if msg.err != nil {
			m.fail(msg.err)
			return nil
		}
		m.note(msg.done)
		return m.reload()
	case refreshMsg:
		if !m.auto || msg.gen != m.gen {
			return nil
		}
		return tea.Batch(m.reload(), m.scheduleRefresh())
	case tea.KeyMsg:
		return m.key(msg)
	}
	return nil
}

// SetSize adapts every view to a terminal of width × height.
func (m *Model) SetSize(width, height int) {
	m.width, m.height = max(width, 20), max(height, 8)
	m.help.Width = m.width
	m.vp.Width, m.vp.Height = m.width, m.bodyHeight()
	m.input.Width = m.width - 2
	m.groupList.clamp(len(m.visibleGroups()))
	m.imageList.clamp(len(m.visibleImages()))
	m.blobList.clamp(len(m.visibleBlobs()))
	if m.screen == screenDetail && m.detail != nil {
		m.refreshDetail()
	}
}

// bodyHeight is what is left for a view under the header and title and
// above the status and help lines.
func (m *Model) bodyHeight() int { return max(m.height-4-len(m.statusLines()), 1) }

func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	if msg.String() == "ctrl+c" {
		return tea.Quit
	}
	// Keys typed faster than the terminal is read arrive as one message of
	// several runes: outside the filter each is a key of its own. Pasted
	// text is only ever a filter, never a string of commands.
	if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !m.filtering {
		if msg.Paste {
			return nil
		}
		cmds := make([]tea.Cmd, 0, len(msg.Runes))
		for _, r := range msg.Runes {
			cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt}))
		}
		return tea.Batch(cmds...)
	}
	switch {
	case m.confirm != nil:
		switch {
		case key.Matches(msg, k.Yes): // only y: enter is too easy to press by habit
			c := m.confirm
			m.confirm = nil
			if c.leaveDetail && m.screen == screenDetail {
				m.screen, m.detail = screenGroup, nil
			}
			return m.start(m.call(func(ctx context.Context) tea.Msg { return c.run(ctx) }))
		case key.Matches(msg, k.No):
			m.confirm = nil
			m.note("cancelled; nothing was changed")
		}
		return nil
	case m.filtering:
		switch msg.String() {
		case "enter":
			m.filtering = false
			m.input.Blur()
		case "esc":
			m.filtering = false
			m.input.Blur()
			m.input.SetValue("")
			m.setFilter("")
		default:
			var cmd tea.Cmd
			m.input, cmd = m.input.Update(msg)
			m.setFilter(m.input.Value())
			return cmd
		}
		return nil
	case m.showHelp:
		if key.Matches(msg, k.Quit) && msg.String() == "q" {
			return tea.Quit
		}
		m.showHelp = false
		return nil
	}

	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.showHelp = true
	case key.Matches(msg, k.Activity):
		return m.openLive(screenActivity)
	case key.Matches(msg, k.Dashboard):
		return m.openLive(screenDashboard)
	case m.live() && key.Matches(msg, k.Back):
		return m.leaveLive()
	case key.Matches(msg, k.Refresh):
		if m.live() {
			return m.loadLive()
		}
		m.note(refreshing)
		return m.reload()
	case key.Matches(msg, k.AutoRefresh):
		return m.toggleAuto()
	case m.screen == screenDetail:
		return m.detailKey(msg)
	case m.screen == screenDashboard:
		return nil
	case key.Matches(msg, k.Filter):
		m.filtering = true
		m.input.SetValue(m.current().filter)
		m.input.CursorEnd()
		return m.input.Focus()
	case key.Matches(msg, k.Sort) && !m.live():
		l := m.current()
		l.bySize = !l.bySize
		l.cursor, l.offset = 0, 0
		m.note("sorted by " + map[bool]string{true: "size", false: "name"}[l.bySize])
	case key.Matches(msg, k.Up):
		m.current().move(-1, m.rowsShown())
	case key.Matches(msg, k.Down):
		m.current().move(1, m.rowsShown())
	case key.Matches(msg, k.PageUp):
		m.current().move(-m.rowsShown(), m.rowsShown())
	case key.Matches(msg, k.PageDown):
		m.current().move(m.rowsShown(), m.rowsShown())
	case key.Matches(msg, k.Top):
		m.current().move(-m.current().cursor, m.rowsShown())
	case key.Matches(msg, k.Bottom):
		m.current().move(m.rows()-1-m.current().cursor, m.rowsShown())
	case m.screen == screenGroups:
		return m.groupsKey(msg)
	case m.screen == screenGroup:
		return m.groupKey(msg)
	}
	return nil
}

func (m *Model) groupsKey(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	g, ok := m.selectedGroup()
	switch {
	case !ok:
		return nil
	case key.Matches(msg, k.Open):
		m.setScreen(screenGroup)
		m.groupPath, m.group, m.images, m.blobs, m.groupDone = g.FullPath, nil, nil, nil, false
		m.tab, m.imageList, m.blobList = tabImages, list{}, list{}
		return m.start(m.loadGroup(g.FullPath))
	case key.Matches(msg, k.Purge):
		m.askPurge(g.GroupSummary)
	case key.Matches(msg, k.Toggle):
		m.askToggle(g.GroupSummary)
	}
	return nil
}

// mayChange reports whether the signed-in user may purge, delete from or
// enable and disable the proxy of a group: an owner or an instance admin.
func (m *Model) mayChange(g adminclient.GroupSummary) bool {
	return m.user != nil && m.user.Admin || g.MyRole == "OWNER"
}

// refuseChange explains a key the user's role cannot use; true when it did.
func (m *Model) refuseChange(g adminclient.GroupSummary, what string) bool {
	if m.mayChange(g) {
		return false
	}
	role := strings.ToLower(string(g.MyRole))
	if role == "" {
		role = "no role"
	}
	m.note(fmt.Sprintf("%s needs the owner role in %s (yours: %s)", what, g.FullPath, role))
	return true
}

func (m *Model) groupKey(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	switch {
	case key.Matches(msg, k.Back):
		m.setScreen(screenGroups)
		m.group = nil
		return m.start(m.loadGroups())
	case key.Matches(msg, k.Tab):
		m.tab = 1 - m.tab
	case m.group == nil:
		return nil
	case key.Matches(msg, k.Purge):
		m.askPurge(m.group.GroupSummary)
	case key.Matches(msg, k.Toggle):
		m.askToggle(m.group.GroupSummary)
	case m.tab != tabImages:
		return nil
	case key.Matches(msg, k.Open):
		if im, ok := m.selectedImage(); ok {
			m.setScreen(screenDetail)
			m.detail = &im.ManifestWithContent
			m.refreshDetail()
			m.vp.GotoTop()
		}
	case key.Matches(msg, k.Delete):
		if im, ok := m.selectedImage(); ok {
			m.askDelete(im.Manifest, false)
		}
	}
	return nil
}

func (m *Model) detailKey(msg tea.KeyMsg) tea.Cmd {
	k := m.keys
	switch {
	case key.Matches(msg, k.Back):
		m.setScreen(screenGroup)
		m.detail = nil
	case key.Matches(msg, k.Top):
		m.vp.GotoTop()
	case key.Matches(msg, k.Bottom):
		m.vp.GotoBottom()
	case key.Matches(msg, k.Delete):
		m.askDelete(m.detail.Manifest, true)
	default:
		var cmd tea.Cmd
		m.vp, cmd = m.vp.Update(msg)
		return cmd
	}
	return nil
}

func (m *Model) askPurge(g adminclient.GroupSummary) {
	if m.refuseChange(g, "purging") {
		return
	}
	path := g.FullPath
	m.confirm = &confirmation{
		question: fmt.Sprintf("Purge the cache of group %s?\n\nThis removes its %d cached images and %d blob references (%s).\nThe next pulls fetch them from the upstream again.",
			path, g.CachedImageCount, g.BlobCount, size(int64(g.TotalSizeBytes))),
		run: func(ctx context.Context) actionMsg {
			r, err := m.api.PurgeCache(ctx, path)
			if err != nil {
				return actionMsg{err: fmt.Errorf("purge %s: %w", path, err)}
			}
			return actionMsg{done: fmt.Sprintf("purged %s: %d manifests, %d blobs, %s freed", path, r.ManifestCount, r.BlobCount, size(int64(r.FreedBytes)))}
		},
	}
}

func (m *Model) askToggle(g adminclient.GroupSummary) {
	if m.refuseChange(g, "enabling or disabling the proxy") {
		return
	}
	path := g.FullPath
	on := g.Setting == nil || !g.Setting.Enabled
	q := fmt.Sprintf("Enable the dependency proxy of %s?\n\nPulls through %s/dependency_proxy/containers/… start to work.", path, path)
	if !on {
		q = fmt.Sprintf("Disable the dependency proxy of %s?\n\nPulls through it get 403 DENIED until it is enabled again;\nits cache is kept.", path)
	}
	m.confirm = &confirmation{
		question: q,
		run: func(ctx context.Context) actionMsg {
			if _, err := m.api.UpdateProxySettings(ctx, adminclient.ProxySettingsInput{GroupPath: path, Enabled: &on}); err != nil {
				return actionMsg{err: fmt.Errorf("%s the proxy of %s: %w", map[bool]string{true: "enable", false: "disable"}[on], path, err)}
			}
			return actionMsg{done: fmt.Sprintf("dependency proxy of %s %s", path, map[bool]string{true: "enabled", false: "disabled"}[on])}
		},
	}
}

func (m *Model) askDelete(im adminclient.Manifest, fromDetail bool) {
	if m.group != nil && m.refuseChange(m.group.GroupSummary, "deleting an image") {
		return
	}
	path, name := m.groupPath, imageRef(im)
	m.confirm = &confirmation{
		question: fmt.Sprintf("Delete %s (%s) from the cache of %s?\n\nThe next pull of it fetches it from the upstream again.", name, shortDigest(im.Digest), path),
		run: func(ctx context.Context) actionMsg {
			if _, err := m.api.DeleteManifest(ctx, path, im.Image, im.Reference); err != nil {
				return actionMsg{err: fmt.Errorf("delete %s: %w", name, err)}
			}
			return actionMsg{done: "deleted " + name + " from " + path}
		},
		leaveDetail: fromDetail,
	}
}

func (m *Model) toggleAuto() tea.Cmd {
	if m.opts.RefreshEvery <= 0 {
		m.note("auto-refresh is off in this session")
		return nil
	}
	m.auto = !m.auto
	m.gen++
	if !m.auto {
		m.note("auto-refresh off; r refreshes")
		return nil
	}
	m.note(fmt.Sprintf("auto-refresh every %s", m.opts.RefreshEvery))
	return m.scheduleRefresh()
}

// current is the list the keys act on.
func (m *Model) current() *list {
	switch {
	case m.live():
		return &m.pullList
	case m.screen == screenGroups:
		return &m.groupList
	case m.tab == tabBlobs:
		return &m.blobList
	}
	return &m.imageList
}

func (m *Model) setFilter(f string) {
	l := m.current()
	l.filter, l.cursor, l.offset = f, 0, 0
}

// rows is the number of rows of the current list.
func (m *Model) rows() int {
	switch {
	case m.live():
		return len(m.visiblePulls())
	case m.screen == screenGroups:
		return len(m.visibleGroups())
	case m.tab == tabBlobs:
		return len(m.visibleBlobs())
	}
	return len(m.visibleImages())
}

// rowsShown is how many table rows fit under the column titles.
func (m *Model) rowsShown() int { return max(m.bodyHeight()-1, 1) }

// note shows an informational status.
func (m *Model) note(s string) {
	m.status, m.statusErr = s, false
	m.vp.Height = m.bodyHeight()
}

// fail shows an error in the status line; the browser keeps running.
func (m *Model) fail(err error) {
	m.status, m.statusErr = err.Error(), true
	m.vp.Height = m.bodyHeight()
}

// start counts calls in flight and starts the spinner with the first.
func (m *Model) start(cmds ...tea.Cmd) tea.Cmd {
	m.busy += len(cmds)
	if m.busy == len(cmds) { // nothing was in flight: the spinner had stopped
		cmds = append(cmds, m.spin.Tick)
	}
	return tea.Batch(cmds...)
}

// done counts a call that ended; the last one of an `r` says when the
// screen was refreshed (unless a call failed: its error stays).
func (m *Model) done() {
	m.busy = max(m.busy-1, 0)
	if m.busy == 0 && m.status == refreshing && !m.statusErr {
		m.note("refreshed at " + m.opts.Now().Format("15:04:05"))
	}
}

// refreshing is the status while an `r` is under way.
const refreshing = "refreshing"

// reload asks again for everything on screen.
func (m *Model) reload() tea.Cmd {
	cmds := []tea.Cmd{m.loadHeader(), m.loadGroups()}
	if m.live() {
		return tea.Batch(m.start(cmds...), m.loadLive())
	}
	if m.screen != screenGroups && m.groupPath != "" {
		cmds = append(cmds, m.loadGroup(m.groupPath))
	}
	return m.start(cmds...)
}

func (m *Model) scheduleRefresh() tea.Cmd {
	if !m.auto || m.opts.RefreshEvery <= 0 {
		return nil
	}
	gen := m.gen
	return tea.Tick(m.opts.RefreshEvery, func(time.Time) tea.Msg { return refreshMsg{gen: gen} })
}

// call runs fn with a timeout in a tea.Cmd.
func (m *Model) call(fn func(ctx context.Context) tea.Msg) tea.Cmd {
	timeout := m.opts.CallTimeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return fn(ctx)
	}
}

func (m *Model) loadHeader() tea.Cmd {
	api := m.api
	return m.call(func(ctx context.Context) tea.Msg {
		u, err := api.CurrentUser(ctx)
		if err != nil {
			return headerMsg{err: fmt.Errorf("read the signed-in user: %w", err)}
		}
		limits, err := api.UpstreamRateLimits(ctx)
		if err != nil {
			return headerMsg{err: fmt.Errorf("read the upstream rate limits: %w", err)}
		}
		st, err := api.CacheActivity(ctx)
		if err != nil {
			return headerMsg{err: fmt.Errorf("read the cache activity: %w", err)}
		}
		return headerMsg{user: u, limits: limits, stats: &st}
	})
}

func (m *Model) loadGroups() tea.Cmd {
	api := m.api
	return m.call(func(ctx context.Context) tea.Msg {
		gs, err := api.BrowseGroups(ctx)
		if err != nil {
			err = fmt.Errorf("list groups: %w", err)
		}
		return groupsMsg{groups: gs, err: err}
	})
}

func (m *Model) loadGroup(path string) tea.Cmd {
	api, limit := m.api, m.opts.Limit
	return m.call(func(ctx context.Context) tea.Msg {
		out := groupMsg{path: path}
		if out.group, out.err = api.Group(ctx, path); out.err != nil {
			out.err = fmt.Errorf("open group %s: %w", path, out.err)
			return out
		}
		if out.images, out.err = api.BrowseManifests(ctx, path, limit); out.err != nil {
			out.err = fmt.Errorf("list images of %s: %w", path, out.err)
			return out
		}
		if out.blobs, out.err = api.BrowseBlobs(ctx, path, limit); out.err != nil {
			out.err = fmt.Errorf("list blobs of %s: %w", path, out.err)
			return out
		}
		// The marks are extra: a server without warm entries shows none.
		if l, err := api.WarmEntries(ctx, path); err == nil {
			out.warm = make(map[string]bool, len(l.Entries))
			for _, e := range l.Entries {
				out.warm[warmKey(e.Image, e.Tag)] = true
			}
		}
		return out
	})
}

// warmKey names a watched tag by its upstream image, as cached manifests
// name it ("library/node:20" for node:20).
func warmKey(image, tag string) string {
	if !strings.Contains(image, "/") {
		image = "library/" + image
	}
	return image + ":" + tag
}

// watched reports whether the group keeps one of im's tags warm.
func (m *Model) watched(im cachedImage) bool {
	for _, t := range im.tags {
		if m.warm[warmKey(im.Image, t)] {
			return true
		}
	}
	return false
}

// imageRef names a cached manifest as a client pulls it.
func imageRef(im adminclient.Manifest) string {
	if strings.HasPrefix(im.Reference, "sha256:") {
		return im.Image + "@" + im.Reference
	}
	return im.Image + ":" + im.Reference
}

// shortDigest is "sha256:" and the first 12 hex characters.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}
