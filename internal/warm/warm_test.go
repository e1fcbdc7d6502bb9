package warm

import (
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

func TestParseReserve(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in          string
		limit, want int
		bad         bool
	}{
		{in: "20%", limit: 100, want: 20},
		{in: "20%", limit: 101, want: 21}, // rounded up
		{in: "0%", limit: 100, want: 0},
		{in: "100%", limit: 200, want: 200},
		{in: "50", limit: 100, want: 50},
		{in: "101%", bad: true},
		{in: "-1", bad: true},
		{in: "ten", bad: true},
		{in: "", bad: true},
	} {
		r, err := ParseReserve(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseReserve(%q) accepted", tc.in)
			}
			continue
		}
		if err != nil || r(tc.limit) != tc.want {
			t.Errorf("ParseReserve(%q)(%d) = %v, %v; want %d", tc.in, tc.limit, r, err, tc.want)
		}
	}
}

const index = `{"manifests":[
 {"digest":"sha256:aaaa","platform":{"os":"linux","architecture":"amd64"}},
 {"digest":"sha256:bbbb","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
 {"digest":"sha256:cccc","platform":{"os":"unknown","architecture":"unknown"}}]}`

func TestChildrenFor(t *testing.T) {
	t.Parallel()
	got, missing, err := childrenFor([]byte(index), []string{"linux/arm64", "linux/amd64", "linux/s390x"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != oci.Digest("sha256:bbbb") || got[1] != oci.Digest("sha256:aaaa") {
		t.Errorf("children = %v, want arm64 (any variant) then amd64", got)
	}
	if len(missing) != 1 || missing[0] != "linux/s390x" {
		t.Errorf("missing = %v, want [linux/s390x]", missing)
	}
	if got, _, _ := childrenFor([]byte(index), []string{"unknown/unknown"}); len(got) != 0 {
		t.Errorf("an attestation manifest was chosen: %v", got)
	}
}

// nextRun puts each entry at its own phase of its interval, within one
// interval of now.
func TestNextRunSpreadsEntries(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 8, 0, 7, 0, time.UTC)
	every := 15 * time.Minute
	phases := map[time.Duration]bool{}
	for id := int64(1); id <= 20; id++ {
		next := nextRun(store.WarmEntry{ID: id, Every: every}, now)
		if !next.After(now) || next.Sub(now) > every {
			t.Fatalf("entry %d next run %v, want within (now, now+%s]", id, next, every)
		}
		if again := nextRun(store.WarmEntry{ID: id, Every: every}, next); again.Sub(next) != every {
			t.Errorf("entry %d: the run after %v is %v, want one interval later", id, next, again)
		}
		phases[next.Sub(now.Truncate(every))%every] = true
	}
	if len(phases) < 15 {
		t.Errorf("20 entries of one interval share %d phases, want them spread", len(phases))
	}
}
