package tui

import "github.com/charmbracelet/lipgloss"

// Styles are every style the browser renders with. With NO_COLOR the
// renderer's profile drops the colours and keeps the layout.
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
}

// NewStyles returns the styles for a renderer.
func NewStyles(r *lipgloss.Renderer) Styles {
	accent := lipgloss.AdaptiveColor{Light: "#005f87", Dark: "#5fafff"}
	muted := lipgloss.AdaptiveColor{Light: "#6c6c6c", Dark: "#8a8a8a"}
	return Styles{
		Header:   r.NewStyle().Bold(true),
		Title:    r.NewStyle().Bold(true).Foreground(accent),
		Column:   r.NewStyle().Bold(true).Foreground(muted),
		Selected: r.NewStyle().Reverse(true),
		Muted:    r.NewStyle().Foreground(muted),
		Tab:      r.NewStyle().Foreground(muted).Padding(0, 1),
		TabOn:    r.NewStyle().Bold(true).Underline(true).Padding(0, 1),
		Status:   r.NewStyle().Foreground(muted),
		Error:    r.NewStyle().Bold(true).Foreground(lipgloss.AdaptiveColor{Light: "#af0000", Dark: "#ff5f5f"}),
		Dialog:   r.NewStyle().Border(lipgloss.NormalBorder()).Padding(0, 1),
		Help:     r.NewStyle().Foreground(muted),
	}
}
