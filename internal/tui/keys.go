package tui

import "github.com/charmbracelet/bubbles/key"

// KeyMap is every key the browser answers to.
type KeyMap struct {
	Up, Down, PageUp, PageDown key.Binding
	Top, Bottom                key.Binding
	Activity, Dashboard        key.Binding
	Open, Back                 key.Binding
	Filter, Sort, Tab          key.Binding
	Delete, Purge, Toggle      key.Binding
	Refresh, AutoRefresh       key.Binding
	Help, Quit                 key.Binding
	Yes, No                    key.Binding
}

// DefaultKeyMap is the key map of the browser.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:          key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:        key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:      key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "page up")),
		PageDown:    key.NewBinding(key.WithKeys("pgdown", " "), key.WithHelp("pgdn", "page down")),
		Top:         key.NewBinding(key.WithKeys("g", "home"), key.WithHelp("g/home", "top")),
		Bottom:      key.NewBinding(key.WithKeys("G", "end"), key.WithHelp("G/end", "bottom")),
		Activity:    key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "activity")),
		Dashboard:   key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "dashboard")),
		Open:        key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
		Back:        key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Filter:      key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Sort:        key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sort")),
		Tab:         key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "images/blobs")),
		Delete:      key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "delete image")),
		Purge:       key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "purge group")),
		Toggle:      key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "enable/disable proxy")),
		Refresh:     key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "refresh")),
		AutoRefresh: key.NewBinding(key.WithKeys("A"), key.WithHelp("A", "auto-refresh on/off")),
		Help:        key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:        key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Yes:         key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes")),
		No:          key.NewBinding(key.WithKeys("n", "N", "esc"), key.WithHelp("n/esc", "no")),
	}
}

// ShortHelp is the one-line help of the footer.
func (k KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Open, k.Back, k.Filter, k.Sort, k.Refresh, k.Help, k.Quit}
}

// FullHelp is the help screen of `?`.
func (k KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Open, k.Back, k.Filter, k.Sort, k.Tab, k.Refresh},
		{k.Activity, k.Dashboard, k.AutoRefresh, k.Delete, k.Purge, k.Toggle},
		{k.Help, k.Quit},
	}
}
