package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentileAndMedian(t *testing.T) {
	t.Parallel()
	ds := []time.Duration{5 * time.Millisecond, 1 * time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
	for _, c := range []struct {
		p    float64
		want float64
	}{{50, 3}, {99, 5}, {20, 1}, {100, 5}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("p%.0f = %v ms, want %v", c.p, got, c.want)
		}
	}
	r := newResults()
	for _, v := range []float64{3, 1, 2, 10} {
		r.add("S1", "wall", Dproxy, v)
	}
	if m, ok := r.Median("S1", "wall", Dproxy); !ok || m != 2.5 {
		t.Errorf("median = %v, %v; want 2.5", m, ok)
	}
	if _, ok := r.Median("S1", "wall", Distribution); ok {
		t.Errorf("a median of no values")
	}
}

func TestWriteReportKeepsTextAroundTheMarkers(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "performance.md")
	if err := os.WriteFile(path, []byte("# Performance\n\nhand-written\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(path, "table one\n"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(mustRead(t, path), endMarker, endMarker+"\n\nafter", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(path, "table two\n"); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, path)
	for _, want := range []string{"hand-written", "table two", "after"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "table one") || strings.Count(got, beginMarker) != 1 {
		t.Errorf("the old section was not replaced:\n%s", got)
	}
}

func TestSplitParams(t *testing.T) {
	t.Parallel()
	got := splitParams(`realm="http://h/jwt/auth",service="x",scope="repository:a/b:pull,push"`)
	want := []string{`realm="http://h/jwt/auth"`, `service="x"`, `scope="repository:a/b:pull,push"`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitParams = %q, want %q", got, want)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
