package tui

import "github.com/charmbracelet/lipgloss"

// Styles are every style the browser renders with.
type Styles struct {
	Header   lipgloss.Style
	Title    lipgloss.Style
	Column   lipgloss.Style
	Selected lipgloss.Style
	Muted    lipgloss.Style
	Tab      lipgloss.Style
	TabOn    lipgloss.Style
	Status   lipgloss.Style
	Error    lipgloss.Style
	Dialog   lipgloss.Style
	Help     lipgloss.Style
	Dim      lipgloss.Style // a key the caller's role cannot use
	Bar      lipgloss.Style // the filled part of a progress bar
	Spark    lipgloss.Style
	SparkAlt lipgloss.Style // the second series of a pair (bytes from upstream)
}

// NewStyles returns the styles for a renderer. With noColor (NO_COLOR)
// they set no colour, only attributes (reverse, bold, underline), so the
// cursor and the active tab stay visible.
func NewStyles(r *lipgloss.Renderer, noColor bool) Styles {
	fg := func(s lipgloss.Style, c lipgloss.TerminalColor) lipgloss.Style {
		if noColor {
			return s
		}
		return s.Foreground(c)
	}
	accent := lipgloss.AdaptiveColor{Light: "#005f87", Dark: "#5fafff"}
	muted := lipgloss.AdaptiveColor{Light: "#6c6c6c", Dark: "#8a8a8a"}
	bad := lipgloss.AdaptiveColor{Light: "#af0000", Dark: "#ff5f5f"}
	warm := lipgloss.AdaptiveColor{Light: "#af5f00", Dark: "#ffaf5f"}
	return Styles{
		Header:   r.NewStyle().Bold(true),
		Title:    fg(r.NewStyle().Bold(true), accent),
		Column:   fg(r.NewStyle().Bold(true), muted),
		Selected: r.NewStyle().Reverse(true),
		Muted:    fg(r.NewStyle(), muted),
		Tab:      fg(r.NewStyle(), muted).Padding(0, 1),
		TabOn:    r.NewStyle().Bold(true).Underline(true).Padding(0, 1),
		Status:   fg(r.NewStyle(), muted),
		Error:    fg(r.NewStyle().Bold(true), bad),
		Dialog:   r.NewStyle().Border(lipgloss.NormalBorder()).Padding(0, 1),
		Help:     fg(r.NewStyle(), muted),
		Dim:      fg(r.NewStyle().Faint(true), muted),
		Bar:      fg(r.NewStyle(), accent),
		Spark:    fg(r.NewStyle(), accent),
		SparkAlt: fg(r.NewStyle(), warm),
	}
}
