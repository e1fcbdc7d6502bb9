package output

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestAge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Second, "just now"}, {time.Minute, "1 minute ago"}, {5 * time.Hour, "5 hours ago"},
		{3 * 24 * time.Hour, "3 days ago"}, {90 * 24 * time.Hour, "3 months ago"}, {800 * 24 * time.Hour, "2 years ago"},
		{-2 * time.Hour, "in 2 hours"},
	}
	for _, tt := range tests {
		if got := Age(tt.d); got != tt.want {
			t.Errorf("Age(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestPrint(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tbl := Table{Header: []string{"NAME", "SIZE"}, Rows: [][]string{{"a", "1"}, {"b", "2"}}}
	tests := []struct {
		name   string
		p      Printer
		want   string
		absent string
	}{
		{"piped", Printer{Format: FormatTable}, "a\t1\nb\t2\n", "NAME"},
		{"terminal", Printer{Format: FormatTable, TTY: true}, "│ NAME │ SIZE │", "\t"},
		{"json", Printer{Format: FormatJSON}, "{\n  \"k\": \"v\"\n}\n", "NAME"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		tt.p.Out, tt.p.Now = &b, func() time.Time { return now }
		if err := tt.p.Print(map[string]string{"k": "v"}, tbl); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tt.want) || strings.Contains(b.String(), tt.absent) {
			t.Errorf("%s: output %q, want %q and no %q", tt.name, b.String(), tt.want, tt.absent)
		}
	}
	p := Printer{TTY: true, Now: func() time.Time { return now }}
	if got := p.Time(now.Add(-3 * time.Hour)); got != "3 hours ago" {
		t.Errorf("Time on a terminal = %q", got)
	}
	if got := (&Printer{}).Time(now); got != "2026-01-02T03:04:05Z" {
		t.Errorf("Time piped = %q", got)
	}
	if _, err := ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat(yaml) succeeded")
	}
}
