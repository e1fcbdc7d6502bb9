package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/testserver"
	"github.com/dproxy/dproxy/internal/units"
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

// pull fetches image:tag of a group through the server as the admin, so
// that the group has a cache.
func pull(t *testing.T, s *testserver.Server, ref string) {
	t.Helper()
	r, err := name.ParseReference(s.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithAuth(&authn.Basic{Username: "admin", Password: s.AdminToken}))
	if err != nil {
		t.Fatalf("pull %s: %v", r, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	s.WaitDownloads(t)
}

// TestConfirmations checks what the destructive commands ask on a
// terminal: purge and clear say what will be removed, counts and size;
// deleting a group wants its path typed. A wrong answer changes nothing;
// without a terminal --yes is needed, before the server is asked anything.
func TestConfirmations(t *testing.T) {
	t.Parallel()
	s := testserver.New(t, testserver.Options{Configure: func(c *config.Config) { c.UpstreamAllowCIDR = []string{"127.0.0.1/32"} }})
	c, err := adminclient.New(s.URL, s.AdminToken, adminclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, g := range []string{"acme", "acme/ci", "beta"} {
		if _, err := c.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	s.Upstream.PushRandomImage(t, "library/alpine", "latest", 2, 2048)
	pull(t, s, "acme/dependency_proxy/containers/alpine:latest")
	pull(t, s, "beta/dependency_proxy/containers/alpine:latest")
	vr, err := c.CreateVirtualRegistry(ctx, "acme", "all", "")
	if err != nil {
		t.Fatal(err)
	}
	vr, err = c.AddVirtualUpstream(ctx, adminclient.VirtualUpstreamInput{RegistryID: vr.ID, Name: ptr("up"), URL: ptr(s.Upstream.URL)})
	if err != nil {
		t.Fatal(err)
	}
	pull(t, s, "virtual_registries/container/"+shortID(vr.ID)+"/library/alpine:latest")
	acme, err := c.Group(ctx, "acme")
	if err != nil || acme.ImageCount == 0 || acme.BlobCount == 0 {
		t.Fatalf("acme = %+v, %v; want a cache", acme.GroupSummary, err)
	}
	// The pull asked for the tag, then the digest: two manifests, one image.
	if acme.ImageCount != 2 || acme.CachedImageCount != 1 {
		t.Errorf("acme counts %d manifests and %d images, want 2 and 1", acme.ImageCount, acme.CachedImageCount)
	}
	acmeCache := cacheText(acme.CachedImageCount, acme.BlobCount, int64(acme.TotalSizeBytes))
	var vrEntries int
	var vrSize int64
	entries, err := c.VirtualCacheEntries(ctx, vr.Upstreams[0].ID)
	if err != nil || len(entries) == 0 {
		t.Fatalf("virtual registry cache = %v, %v", entries, err)
	}
	for _, e := range entries {
		vrEntries++
		vrSize += int64(e.Size)
	}

	yes, no := true, false
	tests := []struct {
		name    string
		tty     *bool
		answer  string
		run     func(a api) error
		asked   string // on stderr
		wantErr error  // errCancelled, or nil
		usage   bool
		changed func() bool
	}{
		{"purge refused without a terminal", &no, "", func(a api) error { return runCachePurge(ctx, &cachePurgeOptions{api: a, Group: "acme"}) },
			"", nil, true, nil},
		{"purge says what goes; no keeps it", &yes, "n\n", func(a api) error { return runCachePurge(ctx, &cachePurgeOptions{api: a, Group: "acme"}) },
			"Remove " + acmeCache + " cached for acme? Their next pulls go upstream. [y/N]: ", errCancelled, false, nil},
		{"clear says what goes; no keeps it", &yes, "\n", func(a api) error {
			return runVRCacheClear(ctx, &vrCacheClearOptions{api: a, RegistryID: shortID(vr.ID)})
		}, fmt.Sprintf("Clear %s (%s) cached for every upstream of virtual registry %s? Their next pulls go upstream. [y/N]: ",
			plural(vrEntries, "cache entry", "cache entries"), units.Size(vrSize), shortID(vr.ID)), errCancelled, false, nil},
		{"group delete refused without a terminal", &no, "acme\n", func(a api) error { return runGroupDelete(ctx, &groupDeleteOptions{api: a, Path: "acme"}) },
			"", nil, true, nil},
		{"group delete wants the path typed", &yes, "acme/ci\n", func(a api) error { return runGroupDelete(ctx, &groupDeleteOptions{api: a, Path: "acme"}) },
			"This deletes group acme and 1 subgroup with everything in them: settings, members, tokens and the cache (" + acmeCache +
				"). It cannot be undone.\nType acme to confirm: ", errCancelled, false, nil},
		{"purge, yes", &yes, "y\n", func(a api) error { return runCachePurge(ctx, &cachePurgeOptions{api: a, Group: "beta"}) },
			"Remove ", nil, false, func() bool { g, err := c.Group(ctx, "beta"); return err == nil && g.CachedImageCount == 0 }},
		{"group delete, the path typed", &yes, "acme\n", func(a api) error { return runGroupDelete(ctx, &groupDeleteOptions{api: a, Path: "acme"}) },
			"Type acme to confirm: ", nil, false, func() bool { _, err := c.Group(ctx, "acme"); return err != nil }},
	}
	for _, tt := range tests { // in order: the last ones change the server
		t.Run(tt.name, func(t *testing.T) {
			ios, _, stderr := cmdutil.Test(tt.answer)
			ios.StdinTTY = tt.tty
			asked := false
			a := api{IO: ios, Printer: func() (*output.Printer, error) { return cmdutil.NewPrinter(ios, "") },
				Client: func() (*adminclient.Client, error) { asked = true; return c, nil }}
			before, _ := c.Group(ctx, "acme")
			err := tt.run(a)
			switch {
			case tt.usage:
				if cmdutil.ExitCode(err) != cmdutil.ExitUsage || asked {
					t.Fatalf("err = %v, server asked: %v; want a usage error before asking the server", err, asked)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			}
			if !strings.Contains(stderr.String(), tt.asked) {
				t.Errorf("asked %q\nwant %q", stderr, tt.asked)
			}
			if tt.changed != nil && !tt.changed() {
				t.Errorf("the confirmed command changed nothing")
			}
			if tt.changed == nil {
				after, _ := c.Group(ctx, "acme")
				if !reflect.DeepEqual(before, after) {
					t.Errorf("acme changed:\n%+v\n%+v", before, after)
				}
				if es, err := c.VirtualCacheEntries(ctx, vr.Upstreams[0].ID); err != nil || len(es) != vrEntries {
					t.Errorf("the virtual registry's cache changed: %d entries, %v", len(es), err)
				}
			}
		})
	}
}
