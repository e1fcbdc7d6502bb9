// Package output renders what commands print: tables (tablewriter) with
// human sizes and ages on a terminal, tab-separated lines without a header
// when piped, and JSON for -o json. It owns the tablewriter dependency and
// must not import adminclient, cmdutil or cobra; sizes and durations are
// rendered by internal/units, as in the TUI.
package output

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/dproxy/dproxy/internal/units"
)

// Format is how data is printed.
type Format string

// Formats.
const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
)

// ParseFormat accepts "", "table" and "json".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "table":
		return FormatTable, nil
	case "json":
		return FormatJSON, nil
	}
	return "", fmt.Errorf("unknown output format %q: want table or json", s)
}

// Printer prints a command's data to Out.
type Printer struct {
	Out io.Writer
	// TTY is true when Out is a terminal: tables get borders and headers,
	// sizes and times are made human.
	TTY    bool
	Format Format
	// Now is the clock for ages (default time.Now).
	Now func() time.Time
}

// JSON reports whether data is printed as JSON.
func (p *Printer) JSON() bool { return p.Format == FormatJSON }

// Table is rows under a header.
type Table struct {
	Header []string
	Rows   [][]string
}

// Print prints data as indented JSON with -o json, else the table t.
func (p *Printer) Print(data any, t Table) error {
	if p.JSON() {
		return p.PrintJSON(data)
	}
	return p.PrintTable(t)
}

// Message prints what a command did: data as JSON with -o json, else the
// line for people.
func (p *Printer) Message(data any, line string) error {
	if p.JSON() {
		return p.PrintJSON(data)
	}
	_, err := fmt.Fprintln(p.Out, line)
	return err
}

// PrintJSON prints v as indented JSON.
func (p *Printer) PrintJSON(v any) error {
	enc := json.NewEncoder(p.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// PrintTable prints a table: boxed with a header on a terminal,
// tab-separated without a header otherwise.
func (p *Printer) PrintTable(t Table) error {
	if !p.TTY {
		for _, r := range t.Rows {
			if _, err := fmt.Fprintln(p.Out, strings.Join(r, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	tbl := tablewriter.NewTable(p.Out,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{Symbols: tw.NewSymbols(tw.StyleLight)})),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithHeaderAutoFormat(tw.Off))
	hdr := make([]any, len(t.Header))
	for i, h := range t.Header {
		hdr[i] = h
	}
	tbl.Header(hdr...)
	if err := tbl.Bulk(t.Rows); err != nil {
		return fmt.Errorf("render table: %w", err)
	}
	return tbl.Render()
}

// Field is one line of a detail view.
type Field struct {
	Name  string
	Value string
}

// PrintFields prints a detail view: "Name: value" lines aligned on a
// terminal, "name<TAB>value" lines otherwise; JSON with -o json.
func (p *Printer) PrintFields(data any, fields []Field) error {
	if p.JSON() {
		return p.PrintJSON(data)
	}
	width := 0
	for _, f := range fields {
		width = max(width, len(f.Name))
	}
	for _, f := range fields {
		var err error
		if p.TTY {
			_, err = fmt.Fprintf(p.Out, "%-*s  %s\n", width+1, f.Name+":", f.Value)
		} else {
			_, err = fmt.Fprintf(p.Out, "%s\t%s\n", f.Name, f.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Size renders a byte count: "2.5 MiB" on a terminal, the number otherwise.
func (p *Printer) Size(n int64) string {
	if !p.TTY {
		return fmt.Sprint(n)
	}
	return units.Size(n)
}

// Time renders a time: an age ("3 minutes ago") on a terminal, RFC 3339
// otherwise; the zero time is "-" or "".
func (p *Printer) Time(t time.Time) string {
	if t.IsZero() {
		if p.TTY {
			return "-"
		}
		return ""
	}
	if !p.TTY {
		return t.UTC().Format(time.RFC3339)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	return Age(now().Sub(t))
}

// Age renders a duration as a rough age ("just now", "5 minutes ago").
func Age(d time.Duration) string {
	if d < 0 {
		d = -d
		return "in " + roughly(d)
	}
	if d < time.Minute {
		return "just now"
	}
	return roughly(d) + " ago"
}

func roughly(d time.Duration) string {
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d < time.Minute:
		return plural(int(d.Seconds()), "second")
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute")
	case d < 48*time.Hour:
		return plural(int(d.Hours()), "hour")
	case d < 60*24*time.Hour:
		return plural(int(d.Hours()/24), "day")
	case d < 730*24*time.Hour:
		return plural(int(d.Hours()/24/30), "month")
	}
	return plural(int(d.Hours()/24/365), "year")
}
