package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
)

func newCmdCITrust(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ci-trust <command>",
		Short: "Manage which CI jobs may pull with their OpenID Connect ID token",
		Long: "A ci-trust lets CI jobs sign in with the ID token their CI system gives them (GitLab's\n" +
			"id_tokens, GitHub Actions' OIDC token) instead of a stored secret: a token from the issuer,\n" +
			"for the audience, whose claims match every --claim rule, may pull with the trust's role from\n" +
			"the group and its subgroups. The job signs in as ci:<trust>:<sub>.",
		Example: "  $ dproxy ci-trust add gitlab-acme --issuer https://gitlab.example.com --audience https://dproxy.example.com --group acme --claim ref_protected=true\n" +
			"  $ dproxy ci-trust list",
	}
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(newCmdCITrustAdd(f, nil), newCmdCITrustList(f, nil), newCmdCITrustShow(f, nil), newCmdCITrustRemove(f, nil))
	return cmd
}

type ciTrustAddOptions struct {
	api
	Input adminclient.CITrustInput
}

func newCmdCITrustAdd(f *cmdutil.Factory, runF func(context.Context, *ciTrustAddOptions) error) *cobra.Command {
	opts := &ciTrustAddOptions{api: newAPI(f)}
	var (
		group, groupClaim, role string
		claims                  []string
		lifetime                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "add <name> --issuer URL --audience AUD {--group PATH | --group-claim CLAIM} [--role guest] [--claim KEY=GLOB]... [--max-lifetime 1h]",
		Short: "Trust the ID tokens of an issuer for pulls from a group",
		Long: "Add a trust policy. --group grants a fixed group (an instance admin, or an owner of the\n" +
			"group); --group-claim takes the group from a token claim whose value is an existing group path\n" +
			"(an instance admin only, since it can reach any group; restrict it with --claim). Every\n" +
			"--claim KEY=GLOB must match: the claim as a string (booleans as true/false) against a glob\n" +
			"where * is any run of characters. Registry tokens end with the ID token, and at the latest\n" +
			"--max-lifetime (1m to 24h) after sign-in.",
		Example: "  $ dproxy ci-trust add gitlab-acme --issuer https://gitlab.example.com --audience https://dproxy.example.com --group acme --claim ref_protected=true\n" +
			"  $ dproxy ci-trust add gitlab-teams --issuer https://gitlab.example.com --audience https://dproxy.example.com --group-claim namespace_path --claim 'namespace_path=team-*'\n" +
			"  $ dproxy ci-trust add actions --issuer https://token.actions.githubusercontent.com --audience https://dproxy.example.com --group acme --claim 'repository=acme/*' --claim ref=refs/heads/main",
		Args: exactArgs(1, "a trust name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := adminclient.CITrustInput{Name: args[0], Issuer: opts.Input.Issuer, Audience: opts.Input.Audience}
			if in.Issuer == "" || in.Audience == "" {
				return &cmdutil.FlagError{Err: fmt.Errorf("give --issuer and --audience")}
			}
			if (group == "") == (groupClaim == "") {
				return &cmdutil.FlagError{Err: fmt.Errorf("give --group PATH or --group-claim CLAIM (one of them)")}
			}
			if group != "" {
				in.GroupPath = &group
			} else {
				in.GroupClaim = &groupClaim
			}
			if role != "" {
				in.Role = &role
			}
			for _, c := range claims {
				k, g, ok := strings.Cut(c, "=")
				if !ok || k == "" || g == "" {
					return &cmdutil.FlagError{Err: fmt.Errorf("--claim %q: want KEY=GLOB, e.g. ref_protected=true", c)}
				}
				in.Claims = append(in.Claims, adminclient.CITrustClaim{Key: k, Glob: g})
			}
			if cmd.Flags().Changed("max-lifetime") {
				if lifetime < time.Minute || lifetime > 24*time.Hour {
					return &cmdutil.FlagError{Err: fmt.Errorf("--max-lifetime %s: want 1m to 24h", lifetime)}
				}
				s := int(lifetime / time.Second)
				in.MaxLifetimeSeconds = &s
			}
			opts.Input = in
			return dispatch(cmd, opts, runF, runCITrustAdd)
		},
	}
	cmd.Flags().StringVar(&opts.Input.Issuer, "issuer", "", "the issuer URL, as its tokens' iss claim names it")
	cmd.Flags().StringVar(&opts.Input.Audience, "audience", "", "the audience the tokens must carry (aud), usually this server's external URL")
	cmd.Flags().StringVar(&group, "group", "", "the group the jobs may pull from (with its subgroups)")
	cmd.Flags().StringVar(&groupClaim, "group-claim", "", "take the group from this claim of each token (instance admin)")
	cmd.Flags().StringVar(&role, "role", "", "the role the jobs pull with (default guest)")
	cmd.Flags().StringArrayVar(&claims, "claim", nil, "KEY=GLOB a claim must match (repeatable; all must match)")
	cmd.Flags().DurationVar(&lifetime, "max-lifetime", time.Hour, "the longest a registry token issued to a job lives")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"guest", "reporter", "developer", "maintainer", "owner"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("group", newCompleter(f).groups())
	return cmd
}

func runCITrustAdd(ctx context.Context, opts *ciTrustAddOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	t, err := c.CreateCITrust(ctx, opts.Input)
	if err != nil {
		return fmt.Errorf("add ci-trust %s: %w", opts.Input.Name, err)
	}
	return printCITrust(opts.api, t)
}

type ciTrustListOptions struct{ api }

func newCmdCITrustList(f *cmdutil.Factory, runF func(context.Context, *ciTrustListOptions) error) *cobra.Command {
	opts := &ciTrustListOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:     "list",
		Short:   "List the CI trusts you may manage",
		Example: "  $ dproxy ci-trust list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return dispatch(cmd, opts, runF, runCITrustList)
		},
	}
}

func runCITrustList(ctx context.Context, opts *ciTrustListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ts, err := c.CITrusts(ctx)
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	t := output.Table{Header: []string{"NAME", "ISSUER", "AUDIENCE", "GROUP", "ROLE", "CLAIMS", "MAX LIFETIME"}}
	for _, tr := range ts {
		t.Rows = append(t.Rows, []string{tr.Name, tr.Issuer, tr.Audience, ciTrustGroup(tr), tr.Role, ciTrustClaims(tr),
			(time.Duration(tr.MaxLifetimeSeconds) * time.Second).String()})
	}
	return p.Print(ts, t)
}

type ciTrustNameOptions struct {
	api
	Name string
}

func newCmdCITrustShow(f *cmdutil.Factory, runF func(context.Context, *ciTrustNameOptions) error) *cobra.Command {
	opts := &ciTrustNameOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "show <name>",
		Short:             "Show a CI trust",
		Example:           "  $ dproxy ci-trust show gitlab-acme -o json",
		Args:              exactArgs(1, "a trust name"),
		ValidArgsFunction: ciTrustNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			return dispatch(cmd, opts, runF, runCITrustShow)
		},
	}
}

func runCITrustShow(ctx context.Context, opts *ciTrustNameOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	t, ok, err := c.CITrust(ctx, opts.Name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("ci-trust %s not found (or you may not manage it); see dproxy ci-trust list", opts.Name)
	}
	return printCITrust(opts.api, t)
}

func newCmdCITrustRemove(f *cmdutil.Factory, runF func(context.Context, *ciTrustNameOptions) error) *cobra.Command {
	opts := &ciTrustNameOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "remove <name>",
		Short:             "Remove a CI trust; registry tokens issued under it stop working",
		Example:           "  $ dproxy ci-trust remove gitlab-acme",
		Args:              exactArgs(1, "a trust name"),
		ValidArgsFunction: ciTrustNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			return dispatch(cmd, opts, runF, runCITrustRemove)
		},
	}
}

func runCITrustRemove(ctx context.Context, opts *ciTrustNameOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	t, err := c.DeleteCITrust(ctx, opts.Name)
	if err != nil {
		return fmt.Errorf("remove ci-trust %s: %w", opts.Name, err)
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	return p.Message(t, "Removed ci-trust "+t.Name)
}

func printCITrust(a api, t adminclient.CITrust) error {
	p, err := a.Printer()
	if err != nil {
		return err
	}
	return p.PrintFields(t, []output.Field{
		{Name: "Name", Value: t.Name},
		{Name: "Issuer", Value: t.Issuer},
		{Name: "Audience", Value: t.Audience},
		{Name: "Group", Value: ciTrustGroup(t)},
		{Name: "Role", Value: t.Role},
		{Name: "Claims", Value: ciTrustClaims(t)},
		{Name: "Max lifetime", Value: (time.Duration(t.MaxLifetimeSeconds) * time.Second).String()},
		{Name: "Created", Value: p.Time(t.CreatedAt)},
	})
}

func ciTrustGroup(t adminclient.CITrust) string {
	if t.GroupPath != nil {
		return *t.GroupPath
	}
	if t.GroupClaim != nil {
		return "claim " + *t.GroupClaim
	}
	return ""
}

func ciTrustClaims(t adminclient.CITrust) string {
	parts := make([]string, len(t.Claims))
	for i, c := range t.Claims {
		parts[i] = c.Key + "=" + strconv.Quote(c.Glob)[1:len(strconv.Quote(c.Glob))-1]
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// ciTrustNames completes the names of the trusts the caller may manage.
func ciTrustNames(f *cmdutil.Factory) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := newAPI(f).Client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ts, err := c.CITrusts(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i] = t.Name
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
