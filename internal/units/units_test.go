package units

import (
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 20, "5.0 MiB"},
		{12*1024*1024 + 512*1024, "12.5 MiB"}, {3 << 30, "3.0 GiB"}, {5 << 40, "5.0 TiB"}, {-2048, "-2.0 KiB"},
	}
	for _, tt := range tests {
		if got := Size(tt.n); got != tt.want {
			t.Errorf("Size(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {45 * time.Second, "45s"}, {5 * time.Minute, "5m"}, {90 * time.Second, "1m30s"},
		{90 * time.Minute, "1h30m"}, {6 * time.Hour, "6h"}, {6*time.Hour + 5*time.Second, "6h0m5s"},
		{500 * time.Millisecond, "500ms"}, {5*time.Minute + 300*time.Millisecond, "5m"},
	}
	for _, tt := range tests {
		got := Duration(tt.d)
		if got != tt.want {
			t.Errorf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != tt.d.Truncate(time.Second) && tt.d >= time.Second {
			t.Errorf("Duration(%v) = %q parses back as %v, %v", tt.d, got, back, err)
		}
	}
	if got := Seconds(300); got != "5m" {
		t.Errorf("Seconds(300) = %q, want 5m", got)
	}
}
