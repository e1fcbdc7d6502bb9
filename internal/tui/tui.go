// Package tui is `dproxy tui`, an interactive cache browser: groups with
// their cache usage, a group's images and blobs, an image's manifest and
// which of its layers are cached, what the server is doing now (downloads
// in flight, recent pulls, charts of the last hour), and the actions an
// operator takes (delete an image, purge a group, enable or disable the
// proxy), each confirmed first.
//
// It owns bubbletea and lipgloss and talks to the server only through
// the API interface (satisfied by *adminclient.Client); sizes are rendered
// by internal/units as on the command line. All I/O happens in tea.Cmds
// that return typed messages; Update never blocks. It must not import
// commands (the cobra package) or server.
package tui

import (
	"context"
	"io"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/dproxy/dproxy/internal/adminclient"
)

// API is what the browser needs of the admin API.
type API interface {
	Server() string
	CurrentUser(ctx context.Context) (adminclient.CurrentUser, error)
	UpstreamRateLimits(ctx context.Context) ([]adminclient.UpstreamRateLimit, error)
	BrowseGroups(ctx context.Context) ([]adminclient.BrowseGroup, error)
	Group(ctx context.Context, path string) (adminclient.Group, error)
	BrowseManifests(ctx context.Context, group string, limit int) ([]adminclient.ManifestWithContent, error)
	BrowseBlobs(ctx context.Context, group string, limit int) ([]adminclient.Blob, error)
	// WarmEntries lists the tags the group keeps warm (marked in its images).
	WarmEntries(ctx context.Context, group string) (adminclient.WarmList, error)
	DeleteManifest(ctx context.Context, group, image, reference string) (adminclient.Manifest, error)
	PurgeCache(ctx context.Context, group string) (adminclient.PurgeResult, error)
	UpdateProxySettings(ctx context.Context, in adminclient.ProxySettingsInput) (adminclient.ProxySetting, error)
	CacheActivity(ctx context.Context) (adminclient.CacheActivity, error)
	ActivitySnapshot(ctx context.Context, first int, after adminclient.Seq) (adminclient.ActivitySnapshot, error)
	DashboardSnapshot(ctx context.Context, buckets int) (adminclient.DashboardSnapshot, error)
}

// Options configure the browser.
type Options struct {
	// RefreshEvery is the auto-refresh period; 0 turns auto-refresh off
	// (the `a` key cannot turn it on then).
	RefreshEvery time.Duration
	// CallTimeout bounds each call to the server. Default 30s.
	CallTimeout time.Duration
	// NoColor renders without colours (NO_COLOR).
	NoColor bool
	// Now is the clock of relative times (default time.Now).
	Now func() time.Time
	// Limit caps the images and blobs loaded for a group. Default 1000.
	Limit int
	// LiveEvery is the refresh period of the activity screen and the
	// dashboard (and then of the header's figures). Default 500ms;
	// negative turns it off (r still refreshes).
	LiveEvery time.Duration
	// StartActivity opens the activity screen first.
	StartActivity bool
}

func (o Options) withDefaults() Options {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Limit <= 0 {
		o.Limit = 1000
	}
	if o.LiveEvery == 0 {
		o.LiveEvery = 500 * time.Millisecond
	}
	return o
}

// Run runs the browser full-screen on in/out until the user quits.
func Run(ctx context.Context, api API, in io.Reader, out io.Writer, opts Options) error {
	r := lipgloss.NewRenderer(out)
	if opts.NoColor {
		// Attributes only: the styles set no colour (see NewStyles), and
		// the Ascii profile would drop the cursor's reverse video too.
		r.SetColorProfile(termenv.ANSI)
	}
	m := New(api, r, opts)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	_, err := p.Run()
	if err == tea.ErrProgramKilled && ctx.Err() != nil {
		return nil
	}
	return err
}
