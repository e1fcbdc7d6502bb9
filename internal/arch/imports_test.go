package arch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is dproxy's module path; packages below are named relative to it.
const module = "github.com/dproxy/dproxy"

// rule constrains the direct, non-test imports of dproxy's packages.
// Patterns name packages relative to the module: "internal/cache" is that
// package, "internal/commands/..." the package and everything below it,
// "..." every package.
type rule struct {
	from   []string // the packages the rule applies to
	except []string // packages of from it does not apply to
	only   []string // when non-nil: the dproxy packages they may import, and no other
	never  []string // dproxy packages they must not import
	why    string   // the arrow, as DESIGN.md §8 states it
}

// rules are DESIGN.md §8's arrows. The upper layers (commands, app, server,
// tui) are imported only from above; the rows with only are complete lists.
// metrics (the Prometheus collectors) is a leaf any layer may count with.
var rules = []rule{
	{
		from: []string{"..."}, except: []string{"cmd/...", "internal/commands/..."},
		never: []string{"internal/commands/..."},
		why:   "nothing below commands imports commands",
	},
	{
		from: []string{"..."}, except: []string{"cmd/...", "internal/commands/...", "internal/tui"},
		never: []string{"internal/tui"},
		why:   "only commands imports tui",
	},
	{
		from: []string{"..."}, except: []string{"cmd/...", "internal/commands/...", "internal/app",
			// A real dproxy for the client tests, built as serve builds it.
			"internal/testserver"},
		never: []string{"internal/app"},
		why:   "app is the composition root: only commands (serve) and the test server assemble one",
	},
	{
		from: []string{"..."}, except: []string{"internal/app", "internal/server/..."},
		never: []string{"internal/server/..."},
		why:   "nothing below server imports server; app mounts it",
	},
	{
		from: []string{"internal/server"},
		only: []string{"internal/server/registry", "internal/server/graphql", "internal/server/gitlab", "internal/metrics"},
		why:  "server → registry, graphql, gitlab",
	},
	{
		from: []string{"internal/server/graphql"},
		only: []string{"internal/admin", "internal/server/graphql/generated", "internal/server/graphql/model", "internal/units"},
		why:  "graphql → admin (decode, call internal/admin, encode; never store or upstream)",
	},
	{
		from: []string{"internal/server/graphql/generated", "internal/server/graphql/model"},
		only: []string{"internal/server/graphql/model"},
		why:  "gqlgen's generated code and the scalars it names stay inside graphql",
	},
	{
		from: []string{"internal/server/gitlab"},
		only: []string{"internal/admin"},
		why:  "gitlab → admin (thin REST over the admin service)",
	},
	{
		from: []string{"internal/admin"},
		only: []string{"internal/auth", "internal/store", "internal/oci", "internal/upstream", "internal/netpolicy"},
		why:  "admin → auth, cache (through its own interface), store; upstream and netpolicy for their types and address checks",
	},
	{
		from: []string{"internal/server/registry"},
		only: []string{"internal/auth", "internal/cache", "internal/oci", "internal/metrics"},
		why:  "registry → auth, cache, oci (never store or upstream: auth resolves pull targets, the cache fetches)",
	},
	{
		from: []string{"internal/auth"},
		only: []string{"internal/store", "internal/upstream", "internal/oci", "internal/keyfile"},
		why:  "auth → store, upstream, oci (pull-target resolution names upstream credentials)",
	},
	{
		from: []string{"internal/cache"},
		only: []string{"internal/store", "internal/blobstore", "internal/upstream", "internal/oci", "internal/metrics"},
		why:  "cache → store, blobstore, upstream, oci",
	},
	{
		from: []string{"internal/servertls"},
		only: []string{"internal/keyfile"},
		why:  "servertls reads the certificate's key as a key file; app hands the TLS settings to server",
	},
	{
		from: []string{"internal/warm"},
		only: []string{"internal/cache", "internal/store", "internal/upstream", "internal/oci", "internal/metrics"},
		why:  "warm → cache, store, upstream, oci (the warmer pulls through the cache's own paths)",
	},
	{
		from: []string{"..."}, except: []string{"internal/app", "internal/warm"},
		never: []string{"internal/warm"},
		why:   "only app runs the warmer; admin reaches it through its own interface",
	},
	{
		from: []string{"internal/cluster"},
		only: []string{"internal/store", "internal/oci"},
		why:  "cluster → store (fetch leases), oci; the cache uses it through its own interface",
	},
	{
		from: []string{"internal/oci"},
		only: []string{},
		why:  "oci is vocabulary: it imports no dproxy package",
	},
	{
		from: []string{"internal/netpolicy"},
		only: []string{},
		why:  "netpolicy imports no dproxy package",
	},
	{
		from: []string{"internal/tui"},
		only: []string{"internal/adminclient", "internal/units"},
		why:  "tui talks to the server through adminclient",
	},
}

// owners name the one package (or tree) that may import each third-party
// library, so a library is used, wrapped and replaced in one place.
var owners = []struct {
	lib    string // a module or package path; its subpackages count too
	owners []string
}{
	{"github.com/spf13/cobra", []string{"internal/commands/..."}},
	{"github.com/olekukonko/tablewriter", []string{"internal/commands/output"}},
	{"github.com/hasura/go-graphql-client", []string{"internal/adminclient"}},
	{"github.com/charmbracelet/bubbletea", []string{"internal/tui"}},
	{"github.com/charmbracelet/lipgloss", []string{"internal/tui"}},
	{"modernc.org/sqlite", []string{"internal/store/..."}},
	{"github.com/jackc/pgx", []string{"internal/store/..."}},
	{"github.com/prometheus/client_golang", []string{"internal/metrics"}},
	{"github.com/golang-jwt/jwt", []string{"internal/auth"}},
	{"github.com/coreos/go-oidc", []string{"internal/auth"}},
	{"github.com/go-jose/go-jose", []string{"internal/auth", "internal/testoidc"}},
}

// TestImportArrows checks every dproxy package's direct imports (not its
// tests') against rules and owners.
func TestImportArrows(t *testing.T) {
	pkgs := listPackages(t)
	if err := checkRows(pkgs); err != nil {
		t.Fatal(err)
	}
	for _, v := range violations(pkgs) {
		t.Error(v)
	}
}

// TestViolationsAreReported runs the checks over a made-up module, so the
// arrows test cannot pass by checking nothing.
func TestViolationsAreReported(t *testing.T) {
	pkgs := map[string][]string{
		"internal/server/registry": {module + "/internal/auth", module + "/internal/store", "net/http"},
		"internal/oci":             {"errors"},
		"internal/lifecycle":       {module + "/internal/server/registry"},
		"internal/store":           {"modernc.org/sqlite/lib"},
		"internal/tui":             {"github.com/charmbracelet/bubbletea", module + "/internal/units"},
		"internal/upstream":        {"github.com/charmbracelet/lipgloss", module + "/internal/tui", module + "/internal/commands/output"},
	}
	want := []string{
		"internal/lifecycle imports internal/server/registry: nothing below server imports server; app mounts it",
		"internal/upstream imports internal/commands/output: nothing below commands imports commands",
		"internal/upstream imports internal/tui: only commands imports tui",
		"internal/upstream imports github.com/charmbracelet/lipgloss: only internal/tui may use it",
		"internal/server/registry imports internal/store, which is not among internal/auth, internal/cache, internal/oci, internal/metrics: registry → auth, cache, oci (never store or upstream: auth resolves pull targets, the cache fetches)",
	}
	got := violations(pkgs)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing violation %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}

// listPackages returns every package of the module with its direct,
// non-test imports, as `go list` sees them.
func listPackages(t *testing.T) map[string][]string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the import test runs `go list`: %v", err)
	}
	out, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("find the module root with `go env GOMOD`: %q, %v", out, err)
	}
	cmd := exec.Command(goCmd, "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out, err = cmd.Output(); err != nil {
		t.Fatalf("go list ./...: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module+"/")] = p.Imports
	}
	return pkgs
}

// checkRows fails when a row names packages that do not exist, so a
// renamed package cannot leave its rule checking nothing.
func checkRows(pkgs map[string][]string) error {
	var pats []string
	for _, r := range rules {
		pats = append(pats, r.from...)
		pats = append(pats, r.except...)
	}
	for _, o := range owners {
		pats = append(pats, o.owners...)
	}
	for _, pat := range pats {
		found := false
		for p := range pkgs {
			found = found || matches(pat, p)
		}
		if !found {
			return fmt.Errorf("the import rules name %s, which matches no package of the module: update the rule", pat)
		}
	}
	return nil
}

// violations returns one line per import that breaks a rule or an owner,
// naming the package, the import and the rule.
func violations(pkgs map[string][]string) []string {
	var out []string
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		for _, imp := range pkgs[p] {
			if dep, ok := strings.CutPrefix(imp, module+"/"); ok {
				out = append(out, internalViolations(p, dep)...)
			} else {
				out = append(out, ownerViolations(p, imp)...)
			}
		}
	}
	return out
}

func internalViolations(p, dep string) []string {
	var out []string
	for _, r := range rules {
		if !matchesAny(r.from, p) || matchesAny(r.except, p) {
			continue
		}
		if r.only != nil && !matchesAny(r.only, dep) {
			allowed := "no dproxy package"
			if len(r.only) > 0 {
				allowed = strings.Join(r.only, ", ")
			}
			out = append(out, fmt.Sprintf("%s imports %s, which is not among %s: %s", p, dep, allowed, r.why))
		}
		if matchesAny(r.never, dep) {
			out = append(out, fmt.Sprintf("%s imports %s: %s", p, dep, r.why))
		}
	}
	return out
}

func ownerViolations(p, imp string) []string {
	var out []string
	for _, o := range owners {
		if (imp == o.lib || strings.HasPrefix(imp, o.lib+"/")) && !matchesAny(o.owners, p) {
			out = append(out, fmt.Sprintf("%s imports %s: only %s may use it", p, imp, strings.Join(o.owners, ", ")))
		}
	}
	return out
}

func matchesAny(pats []string, p string) bool {
	return slices.ContainsFunc(pats, func(pat string) bool { return matches(pat, p) })
}

// matches reports whether package p is pattern pat: the package itself,
// or with a "/..." suffix the package and everything below it.
func matches(pat, p string) bool {
	if pat == "..." {
		return true
	}
	if tree, ok := strings.CutSuffix(pat, "/..."); ok {
		return p == tree || strings.HasPrefix(p, tree+"/")
	}
	return p == pat
}
