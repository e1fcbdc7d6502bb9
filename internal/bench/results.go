package bench

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Results holds every measurement of a bench: per scenario and measure,
// one value per run and target.
type Results struct {
	Env  map[string]string // machine, versions, load
	keys []rowKey          // in the order first measured
	vals map[rowKey]map[string][]float64
}

type rowKey struct{ scenario, measure string }

func newResults() *Results {
	return &Results{Env: map[string]string{}, vals: map[rowKey]map[string][]float64{}}
}

func (r *Results) add(scenario, measure, target string, v float64) {
	k := rowKey{scenario, measure}
	if r.vals[k] == nil {
		r.vals[k] = map[string][]float64{}
		r.keys = append(r.keys, k)
	}
	r.vals[k][target] = append(r.vals[k][target], v)
}

// last returns the latest value of a row for target, or 0.
func (r *Results) last(scenario, measure, target string) float64 {
	vs := r.vals[rowKey{scenario, measure}][target]
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)-1]
}

// Median returns the median of a row's values for target.
func (r *Results) Median(scenario, measure, target string) (float64, bool) {
	vs := r.vals[rowKey{scenario, measure}][target]
	if len(vs) == 0 {
		return 0, false
	}
	return median(vs), true
}

// median returns the median of vs, which must not be empty.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// goal is a row's target and how to check it against the medians.
type goal struct {
	text string
	met  func(m medians) bool
}

type medians struct {
	dproxy, peer, nginxOn, nginxOff float64
}

// goals are the targets of issue 8, keyed by row.
func goals(o Options) map[rowKey]goal {
	coldBound := 1.2*float64(o.ColdSize)/float64(o.Bandwidth) + 1
	fasterNginx := func(m medians) bool {
		return m.dproxy >= 0.9*max(m.nginxOn, m.nginxOff) && m.dproxy > m.peer
	}
	g := map[rowKey]goal{
		{"S1", "wall (ms)"}:           {"≤ peer", func(m medians) bool { return m.dproxy <= m.peer }},
		{"S1", "upstream token GETs"}: {"≤ 1", func(m medians) bool { return m.dproxy <= 1 }},
		{"S2", s2Rate}: {"≥ 2 × peer and ≥ 2,900",
			func(m medians) bool { return m.dproxy >= 2*m.peer && m.dproxy >= 2900 }},
		{"S2", "manifest p99 (ms)"}: {"≤ 100", func(m medians) bool { return m.dproxy <= 100 }},
		{"S2", "upstream manifest HEADs per 1000 manifest requests"}: {"shared (< 1000)",
			func(m medians) bool { return m.dproxy < 1000 }},
		{"S2f", "manifest requests/s"}:                {"≥ 5,000", func(m medians) bool { return m.dproxy >= 5000 }},
		{"S2f", "manifest p99 (ms)"}:                  {"< 50", func(m medians) bool { return m.dproxy < 50 }},
		{"S3", "wall (s)"}:                            {fmt.Sprintf("≤ %.1f", coldBound), func(m medians) bool { return m.dproxy <= coldBound }},
		{"S3", "upstream GETs of the blob"}:           {"1", func(m medians) bool { return m.dproxy == 1 }},
		{"S3", "slowest manifest (ms)"}:               {"≤ 200", func(m medians) bool { return m.dproxy <= 200 }},
		{"S3", "slowest first blob byte (ms)"}:        {"< 500", func(m medians) bool { return m.dproxy < 500 }},
		{"S4", "1 client(s), aggregate MB/s"}:         {"≥ 0.9 × faster nginx, > peer", fasterNginx},
		{"S4", "4 client(s), aggregate MB/s"}:         {"≥ 0.9 × faster nginx, > peer", fasterNginx},
		{"S5", "peak RSS over the whole bench (MiB)"}: {"≤ 100", func(m medians) bool { return m.dproxy <= 100 }},
		{"S6", "upstream manifest GETs"}:              {"0", func(m medians) bool { return m.dproxy == 0 }},
		{"S6", "upstream manifest HEADs"}: {fmt.Sprintf("≤ %d", o.Pulls),
			func(m medians) bool { return m.dproxy <= float64(o.Pulls) }},
		{"S6", "upstream token GETs"}: {"≤ 1", func(m medians) bool { return m.dproxy <= 1 }},
		{"S7", "hang: time to serve (s)"}: {"≤ 5 (the revalidation timeout, + 0.1 s to answer)",
			func(m medians) bool { return m.dproxy <= 5.1 }},
		{"S7", "hang: served the cached manifest (1 = yes)"}: {"1", func(m medians) bool { return m.dproxy == 1 }},
		{"S10", "warm: upstream manifest GETs at pull time"}: {"0", func(m medians) bool { return m.dproxy == 0 }},
		{"S10", "warm: upstream blob GETs at pull time"}:     {"0", func(m medians) bool { return m.dproxy == 0 }},
	}
	atFirstRead := func(m medians) bool { return m.dproxy >= m.peer }
	for _, clients := range []int{1, 4} {
		g[rowKey{"S4", s4FirstRow(clients)}] = goal{"≥ peer", atFirstRead}
		g[rowKey{"S4", fmt.Sprintf("first read, %d client(s), as %% of nginx sendfile on (same run)", clients)}] = goal{"≥ 90",
			func(m medians) bool { return m.dproxy >= 90 }}
	}
	firstBound := 3 * ms(o.Latency)
	for _, outage := range []string{"503", "refused"} {
		g[rowKey{"S7", outage + ": served the cached manifest (1 = yes)"}] = goal{"1", func(m medians) bool { return m.dproxy == 1 }}
		g[rowKey{"S7", outage + ": first manifest (ms)"}] = goal{fmt.Sprintf("≤ %.0f (3 × the upstream latency)", firstBound),
			func(m medians) bool { return m.dproxy <= firstBound }}
		g[rowKey{"S7", fmt.Sprintf("%s: next %d manifests, median (ms)", outage, s7Laters)}] = goal{"< 20",
			func(m medians) bool { return m.dproxy < 20 }}
	}
	return g
}

// Markdown renders the results: settings, machine, the table of medians
// with each target and whether dproxy met it, and every run's values.
func (r *Results) Markdown(o Options, command string) string {
	o.defaults()
	var b strings.Builder
	fmt.Fprintf(&b, "Generated by `%s` on %s.\n\n", command, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Settings: %d runs; upstream latency %s per request, blob bandwidth %.0f MB/s per connection; "+
		"S2 %d clients for %s per measurement; S3 %d clients, %.0f MB blob; S4 %.0f MiB blob (first reads: %.0f MiB blobs); S6 %d pulls; "+
		"S2f freshness window %s; S7 client gives up after %s; S10 %d clients, %d × %.0f MB layers.\n\n",
		o.Runs, o.Latency, float64(o.Bandwidth)/1e6, o.Clients, o.LoadDuration, o.ColdClients, float64(o.ColdSize)/1e6,
		float64(o.BigSize)/(1<<20), float64(o.FirstSize)/(1<<20), o.Pulls, o.Window, o.HangTimeout, o.WarmClients, s10Layers, float64(s10LayerSize)/1e6)
	b.WriteString("| machine and versions | |\n|---|---|\n")
	envKeys := make([]string, 0, len(r.Env))
	for k := range r.Env {
		envKeys = append(envKeys, k)
	}
	slices.Sort(envKeys)
	for _, k := range envKeys {
		fmt.Fprintf(&b, "| %s | %s |\n", k, r.Env[k])
	}
	b.WriteString("\nMedians of the runs (nginx, the physical reference, serves S2 and S4 from the same files):\n\n")
	b.WriteString("| scenario | measure | dproxy | Distribution (peer) | nginx sendfile on | nginx sendfile off | target for dproxy | met |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---|---|\n")
	gs := goals(o)
	for _, k := range r.keys {
		cell := func(target string) (string, float64) {
			v, ok := r.Median(k.scenario, k.measure, target)
			if !ok {
				return "", 0
			}
			return format(v), v
		}
		dc, d := cell(Dproxy)
		pc, p := cell(Distribution)
		onc, on := cell(NginxOn)
		offc, off := cell(NginxOff)
		g, verdict := gs[k], ""
		if g.met != nil && dc != "" {
			verdict = "no"
			if g.met(medians{d, p, on, off}) {
				verdict = "yes"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", k.scenario, k.measure, dc, pc, onc, offc, g.text, verdict)
	}
	b.WriteString("\n<details><summary>Every run's values</summary>\n\n| scenario | measure | target | runs |\n|---|---|---|---|\n")
	for _, k := range r.keys {
		for _, t := range []string{Dproxy, Distribution, NginxOn, NginxOff} {
			vs := r.vals[k][t]
			if len(vs) == 0 {
				continue
			}
			parts := make([]string, len(vs))
			for i, v := range vs {
				parts[i] = format(v)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", k.scenario, k.measure, t, strings.Join(parts, ", "))
		}
	}
	b.WriteString("\n</details>\n")
	return b.String()
}

func format(v float64) string {
	switch {
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// Markers delimit the generated part of docs/performance.md.
const (
	beginMarker = "<!-- bench:begin (generated by dproxy-bench; edits here are overwritten) -->"
	endMarker   = "<!-- bench:end -->"
)

// WriteReport puts section between the markers of the file at path,
// keeping everything around them; a file without markers gets them
// appended. The file is replaced atomically.
func WriteReport(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	s := string(old)
	block := beginMarker + "\n" + section + endMarker
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(endMarker):]
	} else {
		if s == "" {
			s = "# Performance\n"
		}
		s = strings.TrimRight(s, "\n") + "\n\n" + block + "\n"
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
