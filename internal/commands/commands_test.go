package commands

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/testserver"
)

// execute runs cmd with a command line and returns the error.
func execute(cmd *cobra.Command, line string) error {
	cmd.SetArgs(strings.Fields(line))
	cmd.SetIn(&bytes.Buffer{})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	_, err := cmd.ExecuteC()
	return err
}

func ptr[T any](v T) *T { return &v }

// TestFlagsToOptions checks what each command makes of its command line,
// without a server: runF captures the options.
func TestFlagsToOptions(t *testing.T) {
	t.Parallel()
	type tc struct {
		name    string
		build   func(f *cmdutil.Factory, got *any) *cobra.Command
		stdin   string
		line    string
		want    any
		wantErr string
	}
	capture := func(got *any) func(v any) error { return func(v any) error { *got = v; return nil } }
	tests := []tc{
		{"ttl set", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdTTLPolicySet(f, func(_ context.Context, o *ttlPolicySetOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "acme --enabled --ttl 30", ttlPolicySetOptions{Group: "acme", Enabled: ptr(true), TTL: ptr(30)}, ""},
		{"ttl disable only", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdTTLPolicySet(f, func(_ context.Context, o *ttlPolicySetOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "acme --enabled=false", ttlPolicySetOptions{Group: "acme", Enabled: ptr(false)}, ""},
		{"ttl zero", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdTTLPolicySet(f, nil)
		}, "", "acme --ttl 0", nil, "invalid --ttl 0"},
		{"ttl not a number", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdTTLPolicySet(f, nil)
		}, "", "acme --ttl 1.5", nil, `invalid --ttl "1.5"`},
		{"hub-creds set from stdin", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdHubCredsSet(f, func(_ context.Context, o *hubCredsSetOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "s3cret\n", "acme --identity bot --secret-stdin",
			hubCredsSetOptions{hubCredsTarget: hubCredsTarget{Group: "acme"}, Identity: "bot", SecretStdin: true, Secret: "s3cret"}, ""},
		{"hub-creds set default", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdHubCredsSet(f, func(_ context.Context, o *hubCredsSetOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "s3cret", "--default --identity bot --secret-stdin",
			hubCredsSetOptions{hubCredsTarget: hubCredsTarget{Default: true}, Identity: "bot", SecretStdin: true, Secret: "s3cret"}, ""},
		{"hub-creds secret is no flag", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdHubCredsSet(f, nil)
		}, "", "acme --identity bot --secret s3cret", nil, "unknown flag: --secret"},
		{"hub-creds group and default", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdHubCredsSet(f, nil)
		}, "x", "acme --default --identity bot --secret-stdin", nil, "not both"},
		{"member add role any case", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdMemberAdd(f, func(_ context.Context, o *memberAddOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "acme alice --role Reporter", memberAddOptions{Group: "acme", Username: "alice", Role: "REPORTER"}, ""},
		{"member add no role", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdMemberAdd(f, nil)
		}, "", "acme alice", nil, "required flag --role is missing: the member's role: guest, reporter, developer, maintainer or owner"},
		{"deploy token", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdTokenCreate(f, func(_ context.Context, o *tokenCreateOptions) error { return capture(got)(o.Input) })
		}, "", "--group acme --deploy --scopes read_registry --name ci",
			adminclient.TokenInput{Kind: adminclient.TokenDeploy, Name: "ci", GroupPath: "acme", Scopes: []string{"read_registry"}}, ""},
		{"group access token", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdTokenCreate(f, func(_ context.Context, o *tokenCreateOptions) error { return capture(got)(o.Input) })
		}, "", "--group acme --role developer --scopes api,read_registry",
			adminclient.TokenInput{Kind: adminclient.TokenGroupAccess, Name: "dproxy-cli", GroupPath: "acme", Role: "DEVELOPER", Scopes: []string{"api", "read_registry"}}, ""},
		{"token deploy without group", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdTokenCreate(f, nil)
		}, "", "--deploy --scopes read_registry", nil, "--deploy needs --group"},
		{"token past expiry", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdTokenCreate(f, nil)
		}, "", "--scopes api --expires-at 2001-01-01", nil, "in the past"},
		{"cache delete digest", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdCacheDelete(f, func(_ context.Context, o *cacheDeleteOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "acme library/node@sha256:abc", cacheDeleteOptions{Group: "acme", Image: "library/node", Reference: "sha256:abc"}, ""},
		{"cache delete tag", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdCacheDelete(f, func(_ context.Context, o *cacheDeleteOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "acme alpine:3.20", cacheDeleteOptions{Group: "acme", Image: "alpine", Reference: "3.20"}, ""},
		{"group update", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdGroupUpdate(f, func(_ context.Context, o *groupUpdateOptions) error {
				return capture(got)([2]any{*o.FreshnessWindow, *o.AllowAnonymousPull})
			})
		}, "", "acme --freshness-window 5m --allow-anonymous-pull", [2]any{300, true}, ""},
		{"group update freshness window in seconds", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdGroupUpdate(f, func(_ context.Context, o *groupUpdateOptions) error { return capture(got)(*o.FreshnessWindow) })
		}, "", "acme --freshness-window 90s", 90, ""},
		{"group update freshness window off", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdGroupUpdate(f, func(_ context.Context, o *groupUpdateOptions) error { return capture(got)(*o.FreshnessWindow) })
		}, "", "acme --freshness-window 0", 0, ""},
		{"group update freshness window without a unit", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdGroupUpdate(f, nil)
		}, "", "acme --freshness-window 5", nil, `invalid --freshness-window: "5" has no unit: write 5s for seconds or 5m for minutes`},
		{"group update freshness window below a second", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdGroupUpdate(f, nil)
		}, "", "acme --freshness-window 1500ms", nil, `"1500ms" is not a duration in whole seconds`},
		{"group update anonymous pulls use credentials", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdGroupUpdate(f, func(_ context.Context, o *groupUpdateOptions) error {
				return capture(got)([3]any{o.FreshnessWindow == nil, o.AllowAnonymousPull == nil, *o.AnonymousPullsUseCredentials})
			})
		}, "", "mirror --anonymous-pulls-use-credentials=true", [3]any{true, true, true}, ""},
		{"ci-env unknown format", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdCIEnv(f, nil)
		}, "", "acme -o yaml", nil, `-o: unknown format "yaml" for ci-env: want dotenv, shell, dockerconfig, table, json`},
		{"ci-env default format", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdCIEnv(f, func(_ context.Context, o *ciEnvOptions) error { return capture(got)(o.Format) })
		}, "", "acme", "dotenv", ""},
		{"ci-env -o", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdCIEnv(f, func(_ context.Context, o *ciEnvOptions) error { return capture(got)(o.Format) })
		}, "", "acme -o SHELL", "shell", ""},
		{"ci-env --format is the old name of -o", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdCIEnv(f, func(_ context.Context, o *ciEnvOptions) error { return capture(got)(o.Format) })
		}, "", "acme --format json", "json", ""},
		{"ci-env dockerconfig needs a password", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdCIEnv(f, nil)
		}, "", "acme -o dockerconfig", nil, "add --create-deploy-token"},
		{"user password never a flag", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdUserSetPassword(f, nil)
		}, "", "alice", nil, "--password-stdin"},
		{"user password from stdin", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdUserSetPassword(f, func(_ context.Context, o *userSetPasswordOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "new one\n", "alice --password-stdin", userSetPasswordOptions{Username: "alice", Password: "new one"}, ""},
		{"user password with the current one, both from stdin", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdUserSetPassword(f, func(_ context.Context, o *userSetPasswordOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "old one\nnew one\n", "alice --current-password --password-stdin",
			userSetPasswordOptions{Username: "alice", Password: "new one", CurrentPassword: ptr("old one")}, ""},
		{"user password with the current one, only one line", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdUserSetPassword(f, nil)
		}, "old one\n", "alice --current-password --password-stdin", nil, "new password for alice is empty"},
		{"user current password never a flag", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdUserSetPassword(f, nil)
		}, "x\ny\n", "alice --password-stdin --current-password old", nil, "takes a username (got 2 arguments)"},
		{"user block", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdUserBlock(f, true, func(_ context.Context, o *userBlockOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "mallory", userBlockOptions{Username: "mallory", Blocked: true}, ""},
		{"user unblock", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdUserBlock(f, false, func(_ context.Context, o *userBlockOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "mallory", userBlockOptions{Username: "mallory", Blocked: false}, ""},
		{"virtual registry create", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRCreate(f, func(_ context.Context, o *vrCreateOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "acme all --description hub,quay", vrCreateOptions{Group: "acme", Name: "all", Description: "hub,quay"}, ""},
		{"virtual registry update name only", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRUpdate(f, func(_ context.Context, o *vrUpdateOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "1 --name public", vrUpdateOptions{ID: "1", Name: ptr("public")}, ""},
		{"virtual registry update nothing", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRUpdate(f, nil)
		}, "", "1", nil, "nothing to change"},
		{"virtual registry id not a number", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRShow(f, nil)
		}, "", "all", nil, `virtual registry id "all"`},
		{"upstream add with password from stdin", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRUpstreamAdd(f, func(_ context.Context, o *vrUpstreamAddOptions) error { return capture(got)(o.Input) })
		}, "s3cret\n", "1 ours https://registry.example.com --username bot --password-stdin --cache-validity-hours 6",
			adminclient.VirtualUpstreamInput{RegistryID: "1", Name: ptr("ours"), URL: ptr("https://registry.example.com"),
				Username: ptr("bot"), Password: ptr("s3cret"), CacheValidityHours: ptr(6)}, ""},
		{"upstream add password without username", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRUpstreamAdd(f, nil)
		}, "s3cret", "1 ours https://registry.example.com --password-stdin", nil, "--password-stdin needs --username"},
		{"upstream update nothing", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRUpstreamUpdate(f, nil)
		}, "", "3", nil, "nothing to change"},
		{"upstream move", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRUpstreamMove(f, func(_ context.Context, o *vrUpstreamMoveOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "3 --position 0", vrUpstreamMoveOptions{ID: "3", Position: 0}, ""},
		{"upstream move without position", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRUpstreamMove(f, nil)
		}, "", "3", nil, "required flag --position is missing"},
		{"virtual registry cache clear one upstream", func(f *cmdutil.Factory, got *any) *cobra.Command {
			return newCmdVRCacheClear(f, func(_ context.Context, o *vrCacheClearOptions) error { o.api = api{}; return capture(got)(*o) })
		}, "", "1 --upstream 3 --yes", vrCacheClearOptions{RegistryID: "1", UpstreamID: "3", Yes: true}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ios, _, _ := cmdutil.Test(tt.stdin)
			f := cmdutil.NewFactory(ios)
			var got any
			cmd := tt.build(f, &got)
			err := execute(cmd, tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("options = %+v\nwant      %+v", got, tt.want)
			}
		})
	}
}

// TestVirtualRegistryRefusals checks that a virtual registry command
// refuses bad input as a usage error, before its run function.
func TestVirtualRegistryRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		build func(f *cmdutil.Factory, called *bool) *cobra.Command
		line  string
	}{
		{"update with nothing to change", func(f *cmdutil.Factory, called *bool) *cobra.Command {
			return newCmdVRUpdate(f, func(context.Context, *vrUpdateOptions) error { *called = true; return nil })
		}, "1"},
		{"upstream update with nothing to change", func(f *cmdutil.Factory, called *bool) *cobra.Command {
			return newCmdVRUpstreamUpdate(f, func(context.Context, *vrUpstreamUpdateOptions) error { *called = true; return nil })
		}, "3"},
		{"cache clear of an upstream by name", func(f *cmdutil.Factory, called *bool) *cobra.Command {
			return newCmdVRCacheClear(f, func(context.Context, *vrCacheClearOptions) error { *called = true; return nil })
		}, "1 --upstream hub --yes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ios, _, _ := cmdutil.Test("")
			called := false
			err := execute(tt.build(cmdutil.NewFactory(ios), &called), tt.line)
			if cmdutil.ExitCode(err) != cmdutil.ExitUsage {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if called {
				t.Fatal("the run function was called")
			}
		})
	}
}

// TestOptionsToOutput runs commands' run functions against a real server
// and checks what they print, on a terminal and piped.
func TestOptionsToOutput(t *testing.T) {
	t.Parallel()
	s := testserver.New(t, testserver.Options{})
	c, err := adminclient.New(s.URL, s.AdminToken, adminclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CreateGroup(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	newAPIFor := func(tty bool, format string) (api, *bytes.Buffer) {
		ios, out, _ := cmdutil.Test("")
		ios.StdoutTTY = &tty
		f := cmdutil.NewFactory(ios)
		f.Flags.Output = format
		f.AdminClient = func() (*adminclient.Client, error) { return c, nil }
		return newAPI(f), out
	}
	tests := []struct {
		name   string
		tty    bool
		format string
		run    func(api) error
		want   []string
		not    []string
	}{
		{"group list on a terminal", true, "", func(a api) error { return runGroupList(ctx, &groupListOptions{api: a}) },
			[]string{"GROUP", "PROXY", "│ acme", "0 B", "just now"}, nil},
		{"group list piped", false, "", func(a api) error { return runGroupList(ctx, &groupListOptions{api: a}) },
			[]string{"acme\tenabled\t0\t0\t0\t-\t"}, []string{"GROUP", "│"}},
		{"group list json", false, "json", func(a api) error { return runGroupList(ctx, &groupListOptions{api: a}) },
			[]string{`"fullPath": "acme"`}, nil},
		{"enable", true, "", func(a api) error {
			return runGroupEnable(ctx, &groupEnableOptions{api: a, Path: "acme", Enabled: true})
		}, []string{"Dependency proxy:", "enabled"}, nil},
		{"purge", false, "", func(a api) error { return runCachePurge(ctx, &cachePurgeOptions{api: a, Group: "acme", Yes: true}) },
			[]string{"Purged acme: 0 manifests, 0 blobs, 0 B freed"}, nil},
		{"ttl show json", false, "json", func(a api) error { return runTTLPolicyShow(ctx, &ttlPolicyShowOptions{api: a, Group: "acme"}) },
			[]string{`"ttl": 90`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, out := newAPIFor(tt.tty, tt.format)
			if err := tt.run(a); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestPurgeConfirmation(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	tests := []struct {
		name    string
		tty     *bool
		answer  string
		yesFlag bool
		wantErr error
		usage   bool
	}{
		{"no terminal, no --yes", &no, "", false, nil, true},
		{"terminal, answer n", &yes, "n\n", false, errCancelled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ios, _, stderr := cmdutil.Test(tt.answer)
			ios.StdinTTY = tt.tty
			called := false
			a := api{IO: ios, Client: func() (*adminclient.Client, error) { called = true; return nil, errors.New("no server") }}
			err := runCachePurge(context.Background(), &cachePurgeOptions{api: a, Group: "acme", Yes: tt.yesFlag})
			if called {
				t.Fatal("the server was contacted before confirmation")
			}
			if tt.usage && cmdutil.ExitCode(err) != cmdutil.ExitUsage {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if *tt.tty && !strings.Contains(stderr.String(), "[y/N]") {
				t.Fatalf("no question asked: %q", stderr)
			}
		})
	}
}
