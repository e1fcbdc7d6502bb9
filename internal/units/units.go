// Package units renders quantities the way dproxy shows them to people:
// byte counts with binary units ("2.5 MiB"), durations as an operator
// writes them ("5m", "1h30m") and transfer rates. It is a leaf: it imports
// no dproxy package, so the CLI, the TUI and the server can all use it.
package units

import (
	"fmt"
	"strings"
	"time"
)

// Size renders a byte count with binary units: "512 B", "2.5 MiB".
func Size(n int64) string {
	const unit = 1024
	if n < 0 {
		return "-" + Size(-n)
	}
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Rate renders bytes per second: "12.5 MiB/s".
func Rate(bytesPerSecond float64) string {
	return Size(int64(bytesPerSecond)) + "/s"
}

// Duration renders d as Go's duration syntax without zero parts, as
// people write it: "5m", "1h30m", "6h", "45s", "1m30s"; 0 is "0s". The
// result parses back with time.ParseDuration. Parts below a second are
// dropped unless d is shorter than a second.
func Duration(d time.Duration) string {
	if d > -time.Second && d < time.Second {
		return d.String()
	}
	d = d.Truncate(time.Second)
	s := d.String() // "6h0m0s", "30m0s", "1h30m0s", "45s"
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Seconds renders a number of seconds as Duration does.
func Seconds(n int) string { return Duration(time.Duration(n) * time.Second) }
