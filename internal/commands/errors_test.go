package commands

import (
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

// TestUsageErrorsEverywhere checks that a mistake on the command line at
// any level exits 2 with one line naming it and, for a typo, what was
// meant; nothing runs and nothing is printed on stdout.
func TestUsageErrorsEverywhere(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"grup"}, `unknown command "grup" for "dproxy"; did you mean "group"? (see 'dproxy --help')`},
		{[]string{"group", "lsit"}, `unknown command "lsit" for "dproxy group"; did you mean "list"? (see 'dproxy group --help')`},
		{[]string{"virtual-registry", "upstream", "ad", "1"}, `unknown command "ad" for "dproxy virtual-registry upstream"; did you mean "add"?`},
		{[]string{"vreg", "cache", "lst"}, `unknown command "lst" for "dproxy virtual-registry cache"; did you mean "list"?`},
		{[]string{"backup", "creat"}, `unknown command "creat" for "dproxy backup"; did you mean "create"?`},
		{[]string{"help", "group", "lsit"}, `unknown command "lsit" for "dproxy group"; did you mean "list"?`},
		{[]string{"group", "frobnicate"}, `unknown command "frobnicate" for "dproxy group" (see 'dproxy group --help')`},
		{[]string{"group", "list", "--serch", "x"}, "unknown flag: --serch; did you mean --search? (see 'dproxy group list --help')"},
		{[]string{"group", "update", "acme", "--freshness=5m"}, "did you mean --freshness-window?"},
		{[]string{"member", "add", "acme", "alice"}, "required flag --role is missing: the member's role: guest, reporter, developer, maintainer or owner (see 'dproxy member add --help')"},
		{[]string{"token", "create"}, "required flag --scopes is missing: one or more of api, read_registry"},
		{[]string{"hub-creds", "set", "acme", "--secret-stdin"}, "required flag --identity is missing"},
		{[]string{"virtual-registry", "upstream", "move", "3"}, "required flag --position is missing"},
		{[]string{"version", "extra"}, `dproxy version takes no arguments, got "extra"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runMain(tt.args...)
			if code != cmdutil.ExitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, cmdutil.ExitUsage, errOut)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "dproxy: ") {
				t.Errorf("stderr is not one \"dproxy: \" line:\n%s", errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q does not say %q", errOut, tt.want)
			}
			if out != "" {
				t.Errorf("stdout: %q", out)
			}
		})
	}
}

// TestProblemsOnTheirOwnLines checks that a configuration with two
// mistakes gets one line for each.
func TestProblemsOnTheirOwnLines(t *testing.T) {
	t.Parallel()
	code, _, errOut := runMain("serve", "--log-level", "loud", "--log-format", "weird", "--data-dir", t.TempDir())
	if code != cmdutil.ExitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, cmdutil.ExitUsage, errOut)
	}
	var problems int
	for _, l := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
		if !strings.HasPrefix(l, "dproxy: ") {
			t.Errorf("line without the dproxy: prefix: %q", l)
		}
		if strings.Contains(l, `log-level "loud"`) || strings.Contains(l, `log-format "weird"`) {
			if strings.Contains(l, "loud") && strings.Contains(l, "weird") {
				t.Errorf("two problems on one line: %q", l)
			}
			problems++
		}
	}
	if problems != 2 {
		t.Errorf("want each of the two problems on a line of its own:\n%s", errOut)
	}
}

func TestClosest(t *testing.T) {
	t.Parallel()
	names := []string{"list", "create", "delete", "disable", "enable", "show", "update"}
	tests := []struct {
		typed string
		want  string
	}{
		{"lsit", "list"}, {"crate", "create"}, {"del", "delete"}, {"shwo", "show"}, {"frobnicate", ""}, {"", ""},
	}
	for _, tt := range tests {
		if got := strings.Join(closest(tt.typed, names), ","); got != tt.want {
			t.Errorf("closest(%q) = %q, want %q", tt.typed, got, tt.want)
		}
	}
}
