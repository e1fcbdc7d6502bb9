package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
	"github.com/dproxy/dproxy/internal/units"
)

// api is what every admin command's options carry: the streams, the lazy
// client and the printer of -o.
type api struct {
	IO      *cmdutil.IOStreams
	Client  func() (*adminclient.Client, error)
	Printer func() (*output.Printer, error)
}

func newAPI(f *cmdutil.Factory) api {
	return api{IO: f.IOStreams, Client: f.AdminClient, Printer: f.Printer}
}

// addConnectionFlags adds the global flags of the admin commands to a
// noun: the connection, and -o (table or json) unless withOutput is false.
func addConnectionFlags(cmd *cobra.Command, f *cmdutil.Factory, withOutput bool) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.Flags.Server, "server", "", "dproxy server URL (default $DPROXY_SERVER, the login profile, or "+cmdutil.DefaultServer+")")
	pf.StringVar(&f.Flags.Token, "token", "", "API token with the api scope (default $DPROXY_TOKEN, the login profile, or <data-dir>/initial_admin_token)")
	pf.StringVar(&f.Flags.DataDir, "data-dir", "", "data dir of a local dproxy server, for its initial admin token (default $DPROXY_DATA_DIR or "+cmdutil.DefaultDataDir+")")
	if cmd.HasSubCommands() || cmd.RunE == nil {
		cmd.RunE = nounHelp
	}
	if !withOutput {
		return
	}
	pf.StringVarP(&f.Flags.Output, "output", "o", "", "output format: "+strings.Join(outputFormats, " or ")+" (default table)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
	// An unknown -o is refused before anything is asked or changed.
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		_, err := f.Printer()
		return err
	}
}

func newCmdGroup(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group <command>",
		Short: "Manage groups and their dependency proxy",
		Long:  "A group is a namespace (acme, acme/platform) with its own dependency proxy, settings and cache.",
		Example: "  $ dproxy group create acme\n" +
			"  $ dproxy group disable acme\n" +
			"  $ dproxy group list",
	}
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(
		newCmdGroupCreate(f, nil), newCmdGroupList(f, nil), newCmdGroupShow(f, nil),
		newCmdGroupEnable(f, true, nil), newCmdGroupEnable(f, false, nil),
		newCmdGroupUpdate(f, nil), newCmdGroupDelete(f, nil),
	)
	return cmd
}

type groupCreateOptions struct {
	api
	Path string
}

func newCmdGroupCreate(f *cmdutil.Factory, runF func(context.Context, *groupCreateOptions) error) *cobra.Command {
	opts := &groupCreateOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:   "create <path>",
		Short: "Create a group or a subgroup",
		Long: "Create a group. A top-level group needs an instance admin; a subgroup needs owner of its parent, which must exist.\n" +
			"As in GitLab, a new group's dependency proxy is on: its members can pull at once (`dproxy group disable` turns it off).",
		Example: "  $ dproxy group create acme\n" +
			"  $ dproxy group create acme/platform",
		Args: exactArgs(1, "a group path"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			return dispatch(cmd, opts, runF, runGroupCreate)
		},
	}
}

func runGroupCreate(ctx context.Context, opts *groupCreateOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	g, err := c.CreateGroup(ctx, opts.Path)
	if err != nil {
		return fmt.Errorf("create group %s: %w", opts.Path, err)
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	return p.Message(g, createdText(g))
}

// createdText says what a new group is like: its proxy is on (GitLab's
// default) and members can pull now, or off.
func createdText(g adminclient.GroupSummary) string {
	if g.Setting != nil && !g.Setting.Enabled {
		return fmt.Sprintf("Created group %s. Its dependency proxy is off: turn it on with `dproxy group enable %s`", g.FullPath, g.FullPath)
	}
	return fmt.Sprintf("Created group %s. Its dependency proxy is on (GitLab's default): its members can pull through it now.\n"+
		"Add them with `dproxy member add %s <user> --role guest`; turn the proxy off with `dproxy group disable %s`", g.FullPath, g.FullPath, g.FullPath)
}

type groupListOptions struct {
	api
	Search string
}

func newCmdGroupList(f *cmdutil.Factory, runF func(context.Context, *groupListOptions) error) *cobra.Command {
	opts := &groupListOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the groups you can read",
		Example: "  $ dproxy group list\n" +
			"  $ dproxy group list --search platform -o json",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return dispatch(cmd, opts, runF, runGroupList) },
	}
	cmd.Flags().StringVar(&opts.Search, "search", "", "only groups whose path contains this text")
	return cmd
}

func runGroupList(ctx context.Context, opts *groupListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	groups, err := c.AllGroups(ctx, opts.Search)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	t := output.Table{Header: []string{"GROUP", "PROXY", "IMAGES", "BLOBS", "SIZE", "ROLE", "CREATED"}}
	for _, g := range groups {
		t.Rows = append(t.Rows, []string{
			g.FullPath, enabledWord(g.Setting != nil && g.Setting.Enabled), strconv.Itoa(g.CachedImageCount),
			strconv.Itoa(g.BlobCount), p.Size(int64(g.TotalSizeBytes)), roleWord(g.MyRole), p.Time(g.CreatedAt),
		})
	}
	return p.Print(groups, t)
}

type groupShowOptions struct {
	api
	Path string
}

func newCmdGroupShow(f *cmdutil.Factory, runF func(context.Context, *groupShowOptions) error) *cobra.Command {
	opts := &groupShowOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:     "show <path>",
		Aliases: []string{"view"},
		Short:   "Show a group's dependency proxy settings, TTL policy and cache usage",
		Example: "  $ dproxy group show acme\n" +
			"  $ dproxy group show acme/platform -o json",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			return dispatch(cmd, opts, runF, runGroupShow)
		},
	}
}

func runGroupShow(ctx context.Context, opts *groupShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	g, err := c.Group(ctx, opts.Path)
	if err != nil {
		return err
	}
	s := adminclient.ProxySetting{}
	if g.Setting != nil {
		s = *g.Setting
	}
	ttl := adminclient.TTLPolicy{}
	if g.TTLPolicy != nil {
		ttl = *g.TTLPolicy
	}
	subs := make([]string, len(g.Subgroups))
	for i, sg := range g.Subgroups {
		subs[i] = sg.FullPath
	}
	return p.PrintFields(g, []output.Field{
		{Name: "Group", Value: g.FullPath},
		{Name: "Dependency proxy", Value: enabledWord(s.Enabled)},
		{Name: "Docker Hub identity", Value: identityText(s.Identity, s.SecretSet)},
		{Name: "Freshness window", Value: freshnessText(s.FreshnessWindowSeconds)},
		{Name: "Anonymous pulls", Value: allowedWord(s.AllowAnonymousPull)},
		{Name: "Anonymous pulls go upstream", Value: anonymousUpstreamText(s.AnonymousPullsUseCredentials)},
		{Name: "TTL policy", Value: ttlText(ttl)},
		{Name: "Image prefix", Value: g.ImagePrefix},
		{Name: "Direct image prefix", Value: g.DirectImagePrefix},
		{Name: "Images", Value: strconv.Itoa(g.CachedImageCount)},
		{Name: "Blobs", Value: strconv.Itoa(g.BlobCount)},
		{Name: "Size", Value: p.Size(int64(g.TotalSizeBytes))},
		{Name: "Subgroups", Value: strings.Join(subs, ", ")},
		{Name: "Your role", Value: roleWord(g.MyRole)},
		{Name: "Created", Value: p.Time(g.CreatedAt)},
	})
}

type groupEnableOptions struct {
	api
	Path    string
	Enabled bool
}

func newCmdGroupEnable(f *cmdutil.Factory, enable bool, runF func(context.Context, *groupEnableOptions) error) *cobra.Command {
	opts := &groupEnableOptions{api: newAPI(f), Enabled: enable}
	verb, short := "enable", "Turn a group's dependency proxy on"
	if !enable {
		verb, short = "disable", "Turn a group's dependency proxy off (the cache is kept)"
	}
	return &cobra.Command{
		Use:               verb + " <path>",
		Short:             short,
		Long:              short + ". Needs owner of the group.",
		Example:           "  $ dproxy group " + verb + " acme",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			return dispatch(cmd, opts, runF, runGroupEnable)
		},
	}
}

func runGroupEnable(ctx context.Context, opts *groupEnableOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	s, err := c.UpdateProxySettings(ctx, adminclient.ProxySettingsInput{GroupPath: opts.Path, Enabled: &opts.Enabled})
	if err != nil {
		return fmt.Errorf("%s the dependency proxy of %s: %w", enableVerb(opts.Enabled), opts.Path, err)
	}
	return printSetting(opts.api, opts.Path, s)
}

type groupUpdateOptions struct {
	api
	Path                         string
	FreshnessWindow              *int
	AllowAnonymousPull           *bool
	AnonymousPullsUseCredentials *bool
	freshnessWindowValue         string
}

func newCmdGroupUpdate(f *cmdutil.Factory, runF func(context.Context, *groupUpdateOptions) error) *cobra.Command {
	opts := &groupUpdateOptions{api: newAPI(f)}
	var anon, anonCreds bool
	cmd := &cobra.Command{
		Use:   "update <path>",
		Short: "Change a group's manifest freshness window or anonymous pulls",
		Long: "Change a group's dependency proxy options (owner). The freshness window skips the upstream\n" +
			"check of a cached tag while it is younger than the window (0 = check on every pull).\n" +
			"Anonymous pulls go upstream anonymously; only an instance admin can let them use the group's\n" +
			"(else the instance's) Docker Hub credentials with --anonymous-pulls-use-credentials=true.",
		Example: "  $ dproxy group update acme --freshness-window 5m\n" +
			"  $ dproxy group update acme --allow-anonymous-pull=true\n" +
			"  $ dproxy group update mirror --anonymous-pulls-use-credentials=true",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			if cmd.Flags().Changed("freshness-window") {
				secs, err := parseSeconds(opts.freshnessWindowValue)
				if err != nil {
					return &cmdutil.FlagError{Err: fmt.Errorf("invalid --freshness-window: %w", err)}
				}
				opts.FreshnessWindow = &secs
			}
			if cmd.Flags().Changed("allow-anonymous-pull") {
				opts.AllowAnonymousPull = &anon
			}
			if cmd.Flags().Changed("anonymous-pulls-use-credentials") {
				opts.AnonymousPullsUseCredentials = &anonCreds
			}
			if opts.FreshnessWindow == nil && opts.AllowAnonymousPull == nil && opts.AnonymousPullsUseCredentials == nil {
				return &cmdutil.FlagError{Err: fmt.Errorf("nothing to change: give --freshness-window, --allow-anonymous-pull or --anonymous-pulls-use-credentials")}
			}
			return dispatch(cmd, opts, runF, runGroupUpdate)
		},
	}
	cmd.Flags().StringVar(&opts.freshnessWindowValue, "freshness-window", "", "serve a cached tag without asking upstream while younger than this: a duration such as 30s, 5m or 1h; 0 checks on every pull")
	cmd.Flags().BoolVar(&anon, "allow-anonymous-pull", false, "allow pulls without credentials (for daemons' mirror configs)")
	cmd.Flags().BoolVar(&anonCreds, "anonymous-pulls-use-credentials", false, "send anonymous pulls upstream with the group's or the instance's Docker Hub credentials (turning it on needs an instance admin)")
	return cmd
}

func runGroupUpdate(ctx context.Context, opts *groupUpdateOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	s, err := c.UpdateProxySettings(ctx, adminclient.ProxySettingsInput{
		GroupPath: opts.Path, FreshnessWindowSeconds: opts.FreshnessWindow, AllowAnonymousPull: opts.AllowAnonymousPull,
		AnonymousPullsUseCredentials: opts.AnonymousPullsUseCredentials,
	})
	if err != nil {
		return fmt.Errorf("update the dependency proxy of %s: %w", opts.Path, err)
	}
	return printSetting(opts.api, opts.Path, s)
}

// printSetting prints a group's proxy setting after a change.
func printSetting(a api, path string, s adminclient.ProxySetting) error {
	p, err := a.Printer()
	if err != nil {
		return err
	}
	return p.PrintFields(s, []output.Field{
		{Name: "Group", Value: path},
		{Name: "Dependency proxy", Value: enabledWord(s.Enabled)},
		{Name: "Docker Hub identity", Value: identityText(s.Identity, s.SecretSet)},
		{Name: "Freshness window", Value: freshnessText(s.FreshnessWindowSeconds)},
		{Name: "Anonymous pulls", Value: allowedWord(s.AllowAnonymousPull)},
		{Name: "Anonymous pulls go upstream", Value: anonymousUpstreamText(s.AnonymousPullsUseCredentials)},
	})
}

// freshnessText renders a freshness window as it is written on the
// command line ("5m"); 0 says what it means.
func freshnessText(secs int) string {
	if secs == 0 {
		return "0 (a cached tag is checked upstream on every pull)"
	}
	return units.Seconds(secs)
}

// anonymousUpstreamText says how anonymous pulls reach the upstream.
func anonymousUpstreamText(useCredentials bool) string {
	if useCredentials {
		return "with the Docker Hub credentials (set by an instance admin)"
	}
	return "anonymously"
}

// groupDeleted is what `group delete -o json` prints.
type groupDeleted struct {
	FullPath string `json:"fullPath"`
	Deleted  bool   `json:"deleted"`
}

type groupDeleteOptions struct {
	api
	Path string
	Yes  bool
}

func newCmdGroupDelete(f *cmdutil.Factory, runF func(context.Context, *groupDeleteOptions) error) *cobra.Command {
	opts := &groupDeleteOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "delete <path>",
		Short: "Delete a group with its subgroups, settings, members, tokens and cache",
		Long: "Delete a group and everything under it (owner). On a terminal it says what goes and asks\n" +
			"you to type the group's path to confirm, unless --yes; without a terminal --yes is required.",
		Example:           "  $ dproxy group delete acme/old --yes",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			return dispatch(cmd, opts, runF, runGroupDelete)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func runGroupDelete(ctx context.Context, opts *groupDeleteOptions) error {
	ask, err := mustAsk(opts.IO, opts.Yes)
	if err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	if ask {
		g, err := c.Group(ctx, opts.Path)
		if err != nil {
			return err
		}
		what := fmt.Sprintf("This deletes group %s", opts.Path)
		if n := len(g.Subgroups); n > 0 {
			what += " and " + plural(n, "subgroup", "subgroups") + " with everything in them"
		}
		what += fmt.Sprintf(": settings, members, tokens and the cache (%s). It cannot be undone.",
			cacheText(g.CachedImageCount, g.BlobCount, int64(g.TotalSizeBytes)))
		if err := confirmTyped(opts.IO, opts.Path, what); err != nil {
			return err
		}
	}
	if err := c.DeleteGroup(ctx, opts.Path); err != nil {
		return fmt.Errorf("delete group %s: %w", opts.Path, err)
	}
	return p.Message(groupDeleted{FullPath: opts.Path, Deleted: true}, "Deleted group "+opts.Path)
}
