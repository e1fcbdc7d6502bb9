package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
	"github.com/dproxy/dproxy/internal/units"
)

func newCmdVirtualRegistry(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "virtual-registry <command>",
		Aliases: []string{"vreg"},
		Short:   "Manage container virtual registries: one pull address over ordered upstreams",
		Long: "A container virtual registry belongs to a top-level group and puts up to 5 upstream\n" +
			"registries (any OCI registry, each with its own credentials) behind one address,\n" +
			"<host>/virtual_registries/container/<id>/<image>:<tag>; the upstreams are asked in order.\n" +
			"Owners of the group change them; guests see them. See docs/virtual-registries.md.",
		Example: "  $ dproxy virtual-registry create acme all --description 'hub, quay and ours'\n" +
			"  $ dproxy virtual-registry upstream add 1 hub https://registry-1.docker.io\n" +
			"  $ printf %s \"$PW\" | dproxy virtual-registry upstream add 1 ours https://registry.example.com --username bot --password-stdin\n" +
			"  $ dproxy virtual-registry show 1",
	}
	addConnectionFlags(cmd, f, true)
	up := &cobra.Command{
		Use:   "upstream <command>",
		Short: "Manage the upstreams of a virtual registry",
		Long:  "Upstreams are asked in order (position 0 first). Passwords are read from stdin and never shown.",
		Example: "  $ dproxy virtual-registry upstream add 1 quay https://quay.io\n" +
			"  $ dproxy virtual-registry upstream move 3 --position 0",
	}
	up.RunE = nounHelp
	up.AddCommand(newCmdVRUpstreamAdd(f, nil), newCmdVRUpstreamList(f, nil), newCmdVRUpstreamUpdate(f, nil),
		newCmdVRUpstreamMove(f, nil), newCmdVRUpstreamDelete(f, nil))
	cache := &cobra.Command{
		Use:   "cache <command>",
		Short: "List, delete and clear what the upstreams of a virtual registry have cached",
		Long:  "Each upstream has its own cache: manifests (<image>/manifests/<ref>) and blobs (blobs/<digest>).",
		Example: "  $ dproxy virtual-registry cache list 3\n" +
			"  $ dproxy virtual-registry cache clear 1 --yes",
	}
	cache.RunE = nounHelp
	cache.AddCommand(newCmdVRCacheList(f, nil), newCmdVRCacheDelete(f, nil), newCmdVRCacheClear(f, nil))
	cmd.AddCommand(newCmdVRCreate(f, nil), newCmdVRList(f, nil), newCmdVRShow(f, nil), newCmdVRUpdate(f, nil), newCmdVRDelete(f, nil), up, cache)
	return cmd
}

// vrID accepts a registry's or an upstream's number (as shown) or its gid.
func vrID(what, s string) (string, error) {
	if strings.HasPrefix(s, "gid://") {
		return s, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err != nil || n <= 0 {
		return "", &cmdutil.FlagError{Err: fmt.Errorf("%s id %q: use the number `dproxy virtual-registry list <group>` shows", what, s)}
	}
	return s, nil
}

// shortID is the number at the end of a gid.
func shortID(gid string) string { return gid[strings.LastIndex(gid, "/")+1:] }

type vrCreateOptions struct {
	api
	Group       string
	Name        string
	Description string
}

func newCmdVRCreate(f *cmdutil.Factory, runF func(context.Context, *vrCreateOptions) error) *cobra.Command {
	opts := &vrCreateOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:               "create <group> <name> [--description TEXT]",
		Short:             "Create a virtual registry in a top-level group",
		Example:           "  $ dproxy virtual-registry create acme all --description 'hub, quay and ours'",
		Args:              exactArgs(2, "a top-level group path and a name"),
		ValidArgsFunction: args(newCompleter(f).topGroups()),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group, opts.Name = args[0], args[1]
			return dispatch(cmd, opts, runF, runVRCreate)
		},
	}
	cmd.Flags().StringVar(&opts.Description, "description", "", "what the registry is for")
	return cmd
}

func runVRCreate(ctx context.Context, opts *vrCreateOptions) error {
	return changeVR(opts.api, fmt.Sprintf("create virtual registry %s in %s", opts.Name, opts.Group), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
		return c.CreateVirtualRegistry(ctx, opts.Group, opts.Name, opts.Description)
	})
}

type vrListOptions struct {
	api
	Group string
}

func newCmdVRList(f *cmdutil.Factory, runF func(context.Context, *vrListOptions) error) *cobra.Command {
	opts := &vrListOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "list <group>",
		Short:             "List a group's virtual registries",
		Example:           "  $ dproxy virtual-registry list acme",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).topGroups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			return dispatch(cmd, opts, runF, runVRList)
		},
	}
}

func runVRList(ctx context.Context, opts *vrListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	rs, err := c.VirtualRegistries(ctx, opts.Group)
	if err != nil {
		return fmt.Errorf("list the virtual registries of %s: %w", opts.Group, err)
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	t := output.Table{Header: []string{"ID", "NAME", "UPSTREAMS", "PULL PREFIX", "DESCRIPTION"}}
	for _, r := range rs {
		names := make([]string, len(r.Upstreams))
		for i, u := range r.Upstreams {
			names[i] = u.Name
		}
		t.Rows = append(t.Rows, []string{shortID(r.ID), r.Name, strings.Join(names, ","), r.PullPrefix, r.Description})
	}
	return p.Print(rs, t)
}

// vrShowOptions are the options of `virtual-registry show` and of
// `virtual-registry upstream list`, which is the same command.
type vrShowOptions struct {
	api
	ID string
}

func newCmdVRShow(f *cmdutil.Factory, runF func(context.Context, *vrShowOptions) error) *cobra.Command {
	opts := &vrShowOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "show <id>",
		Short:             "Show a virtual registry and its upstreams in order",
		Example:           "  $ dproxy virtual-registry show 1 -o json",
		Args:              exactArgs(1, "a virtual registry id"),
		ValidArgsFunction: newCompleter(f).registryIDs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			return dispatch(cmd, opts, runF, runVRShow)
		},
	}
}

func runVRShow(ctx context.Context, opts *vrShowOptions) error {
	return changeVR(opts.api, fmt.Sprintf("show virtual registry %s", opts.ID), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
		return c.VirtualRegistry(ctx, opts.ID)
	})
}

// vrUpdateOptions hold what to change: a nil field is left as it is.
type vrUpdateOptions struct {
	api
	ID          string
	Name        *string
	Description *string
}

func newCmdVRUpdate(f *cmdutil.Factory, runF func(context.Context, *vrUpdateOptions) error) *cobra.Command {
	opts := &vrUpdateOptions{api: newAPI(f)}
	var name, description string
	cmd := &cobra.Command{
		Use:               "update <id> [--name NAME] [--description TEXT]",
		Short:             "Rename a virtual registry or change its description",
		Example:           "  $ dproxy virtual-registry update 1 --name public",
		Args:              exactArgs(1, "a virtual registry id"),
		ValidArgsFunction: newCompleter(f).registryIDs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			if cmd.Flags().Changed("name") {
				opts.Name = &name
			}
			if cmd.Flags().Changed("description") {
				opts.Description = &description
			}
			if opts.Name == nil && opts.Description == nil {
				return &cmdutil.FlagError{Err: errors.New("nothing to change: pass --name or --description")}
			}
			return dispatch(cmd, opts, runF, runVRUpdate)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new name")
	cmd.Flags().StringVar(&description, "description", "", "new description")
	return cmd
}

func runVRUpdate(ctx context.Context, opts *vrUpdateOptions) error {
	in := adminclient.VirtualRegistryInput{ID: opts.ID, Name: opts.Name, Description: opts.Description}
	return changeVR(opts.api, fmt.Sprintf("update virtual registry %s", opts.ID), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
		return c.UpdateVirtualRegistry(ctx, in)
	})
}

// vrDeleted is what `virtual-registry delete -o json` prints.
type vrDeleted struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

type vrDeleteOptions struct {
	api
	ID  string
	Yes bool
}

func newCmdVRDelete(f *cmdutil.Factory, runF func(context.Context, *vrDeleteOptions) error) *cobra.Command {
	opts := &vrDeleteOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:               "delete <id> [--yes]",
		Short:             "Delete a virtual registry and its upstreams",
		Long:              "Delete a virtual registry and its upstreams (owner). Asks on a terminal; needs --yes otherwise.",
		Example:           "  $ dproxy virtual-registry delete 1 --yes",
		Args:              exactArgs(1, "a virtual registry id"),
		ValidArgsFunction: newCompleter(f).registryIDs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			return dispatch(cmd, opts, runF, runVRDelete)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func runVRDelete(ctx context.Context, opts *vrDeleteOptions) error {
	if err := confirm(opts.IO, opts.Yes, fmt.Sprintf("Delete virtual registry %s and its upstreams?", opts.ID)); err != nil {
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
	if err := c.DeleteVirtualRegistry(ctx, opts.ID); err != nil {
		return fmt.Errorf("delete virtual registry %s: %w", opts.ID, err)
	}
	return p.Message(vrDeleted{ID: opts.ID, Deleted: true}, "Deleted virtual registry "+opts.ID)
}

// upstreamFlags are the settings of an upstream on the command line.
type upstreamFlags struct {
	username      string
	passwordStdin bool
	clear         bool
	validity      int
	name, url     string
}

// input fills in what was given; the password comes from stdin only.
func (u *upstreamFlags) input(cmd *cobra.Command, ios *cmdutil.IOStreams, in *adminclient.VirtualUpstreamInput) error {
	fl := cmd.Flags()
	if u.clear && (fl.Changed("username") || u.passwordStdin) {
		return &cmdutil.FlagError{Err: errors.New("--clear-credentials and --username/--password-stdin do not go together")}
	}
	if u.passwordStdin && !fl.Changed("username") && in.ID == "" {
		return &cmdutil.FlagError{Err: errors.New("--password-stdin needs --username: the account the password belongs to")}
	}
	if fl.Changed("username") {
		in.Username = &u.username
	}
	if u.passwordStdin {
		pw, err := ios.ReadSecret("password of " + u.username)
		if err != nil {
			return err
		}
		in.Password = &pw
	}
	if u.clear {
		empty := ""
		in.Username, in.Password = &empty, &empty
	}
	if fl.Changed("cache-validity-hours") {
		in.CacheValidityHours = &u.validity
	}
	if fl.Changed("name") {
		in.Name = &u.name
	}
	if fl.Changed("url") {
		in.URL = &u.url
	}
	return nil
}

func (u *upstreamFlags) bind(cmd *cobra.Command, update bool) {
	fl := cmd.Flags()
	fl.StringVar(&u.username, "username", "", "username for the upstream (Basic or token flow)")
	fl.BoolVar(&u.passwordStdin, "password-stdin", false, "read the upstream's password from stdin")
	fl.IntVar(&u.validity, "cache-validity-hours", 24, "hours a cached copy is served without asking this upstream (0: never ask again)")
	if update {
		fl.StringVar(&u.name, "name", "", "new name")
		fl.StringVar(&u.url, "url", "", "new URL")
		fl.BoolVar(&u.clear, "clear-credentials", false, "remove the username and password")
	}
}

// vrUpstreamAddOptions carry the new upstream: RegistryID, Name and URL
// always, the rest when given; the password is read from stdin.
type vrUpstreamAddOptions struct {
	api
	Input adminclient.VirtualUpstreamInput
}

func newCmdVRUpstreamAdd(f *cmdutil.Factory, runF func(context.Context, *vrUpstreamAddOptions) error) *cobra.Command {
	opts := &vrUpstreamAddOptions{api: newAPI(f)}
	u := &upstreamFlags{}
	cmd := &cobra.Command{
		Use:   "add <registry-id> <name> <url> [--username U --password-stdin] [--cache-validity-hours N]",
		Short: "Add an upstream after the registry's last one",
		Example: "  $ dproxy virtual-registry upstream add 1 hub https://registry-1.docker.io --cache-validity-hours 6\n" +
			"  $ printf %s \"$PW\" | dproxy virtual-registry upstream add 1 ours https://registry.example.com --username bot --password-stdin",
		Args:              exactArgs(3, "a virtual registry id, an upstream name and its URL"),
		ValidArgsFunction: args(newCompleter(f).registryIDs()),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			opts.Input = adminclient.VirtualUpstreamInput{RegistryID: id, Name: &args[1], URL: &args[2]}
			if err := u.input(cmd, opts.IO, &opts.Input); err != nil {
				return err
			}
			return dispatch(cmd, opts, runF, runVRUpstreamAdd)
		},
	}
	u.bind(cmd, false)
	return cmd
}

func runVRUpstreamAdd(ctx context.Context, opts *vrUpstreamAddOptions) error {
	in := opts.Input
	return changeVR(opts.api, fmt.Sprintf("add upstream %s to virtual registry %s", *in.Name, in.RegistryID), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
		return c.AddVirtualUpstream(ctx, in)
	})
}

// newCmdVRUpstreamList is `virtual-registry show` under another name.
func newCmdVRUpstreamList(f *cmdutil.Factory, runF func(context.Context, *vrShowOptions) error) *cobra.Command {
	cmd := newCmdVRShow(f, runF)
	cmd.Use = "list <registry-id>"
	cmd.Short = "List a virtual registry's upstreams in order"
	cmd.Example = "  $ dproxy virtual-registry upstream list 1"
	return cmd
}

// vrUpstreamUpdateOptions carry the upstream's ID and what to change: a
// nil field of Input is left as it is.
type vrUpstreamUpdateOptions struct {
	api
	Input adminclient.VirtualUpstreamInput
}

func newCmdVRUpstreamUpdate(f *cmdutil.Factory, runF func(context.Context, *vrUpstreamUpdateOptions) error) *cobra.Command {
	opts := &vrUpstreamUpdateOptions{api: newAPI(f)}
	u := &upstreamFlags{}
	cmd := &cobra.Command{
		Use:   "update <upstream-id> [--name N] [--url URL] [--username U] [--password-stdin | --clear-credentials] [--cache-validity-hours N]",
		Short: "Change an upstream",
		Long: "Change an upstream. A new scheme, host or port in --url clears the stored username and password " +
			"(they stay with the host they were given for) unless --username and --password-stdin come with it.",
		Example: "  $ dproxy virtual-registry upstream update 3 --cache-validity-hours 0\n" +
			"  $ printf %s \"$NEW_PW\" | dproxy virtual-registry upstream update 3 --password-stdin\n" +
			"  $ printf %s \"$PW\" | dproxy virtual-registry upstream update 3 --url https://mirror.example.com --username bot --password-stdin",
		Args:              exactArgs(1, "an upstream id"),
		ValidArgsFunction: newCompleter(f).upstreamIDs(false),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			opts.Input = adminclient.VirtualUpstreamInput{ID: id}
			if err := u.input(cmd, opts.IO, &opts.Input); err != nil {
				return err
			}
			if opts.Input == (adminclient.VirtualUpstreamInput{ID: id}) {
				return &cmdutil.FlagError{Err: errors.New("nothing to change: pass --name, --url, --username, --password-stdin, --clear-credentials or --cache-validity-hours")}
			}
			return dispatch(cmd, opts, runF, runVRUpstreamUpdate)
		},
	}
	u.bind(cmd, true)
	return cmd
}

func runVRUpstreamUpdate(ctx context.Context, opts *vrUpstreamUpdateOptions) error {
	in := opts.Input
	var cleared bool
	err := changeVR(opts.api, fmt.Sprintf("update upstream %s", in.ID), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
		ch, err := c.UpdateVirtualUpstream(ctx, in)
		cleared = ch.CredentialsCleared
		return ch.Registry, err
	})
	if err != nil || !cleared {
		return err
	}
	// On stderr, so that -o json stays the registry alone.
	_, err = fmt.Fprintf(opts.IO.ErrOut, "Cleared the username and password of upstream %s: its scheme, host or port changed, and credentials stay with their host. "+
		"Set them for the new host with `dproxy virtual-registry upstream update %s --username USER --password-stdin`\n", shortID(in.ID), shortID(in.ID))
	return err
}

type vrUpstreamMoveOptions struct {
	api
	ID       string
	Position int
}

func newCmdVRUpstreamMove(f *cmdutil.Factory, runF func(context.Context, *vrUpstreamMoveOptions) error) *cobra.Command {
	opts := &vrUpstreamMoveOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:               "move <upstream-id> --position N",
		Short:             "Move an upstream to a position (0 = asked first)",
		Example:           "  $ dproxy virtual-registry upstream move 3 --position 0",
		Args:              exactArgs(1, "an upstream id"),
		ValidArgsFunction: newCompleter(f).upstreamIDs(false),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			if !cmd.Flags().Changed("position") {
				return requiredFlag(cmd, "position", "0 for the upstream asked first, 1 for the next, …")
			}
			if opts.Position < 0 {
				return &cmdutil.FlagError{Err: fmt.Errorf("invalid --position %d: 0 for the upstream asked first, 1 for the next, …", opts.Position)}
			}
			return dispatch(cmd, opts, runF, runVRUpstreamMove)
		},
	}
	cmd.Flags().IntVar(&opts.Position, "position", 0, "new position, 0 being asked first (required)")
	return cmd
}

func runVRUpstreamMove(ctx context.Context, opts *vrUpstreamMoveOptions) error {
	return changeVR(opts.api, fmt.Sprintf("move upstream %s", opts.ID), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
		return c.MoveVirtualUpstream(ctx, opts.ID, opts.Position)
	})
}

type vrUpstreamDeleteOptions struct {
	api
	ID string
}

func newCmdVRUpstreamDelete(f *cmdutil.Factory, runF func(context.Context, *vrUpstreamDeleteOptions) error) *cobra.Command {
	opts := &vrUpstreamDeleteOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "delete <upstream-id>",
		Short:             "Delete an upstream; those after it move up",
		Example:           "  $ dproxy virtual-registry upstream delete 3",
		Args:              exactArgs(1, "an upstream id"),
		ValidArgsFunction: newCompleter(f).upstreamIDs(false),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			opts.ID = id
			return dispatch(cmd, opts, runF, runVRUpstreamDelete)
		},
	}
}

func runVRUpstreamDelete(ctx context.Context, opts *vrUpstreamDeleteOptions) error {
	return changeVR(opts.api, fmt.Sprintf("delete upstream %s", opts.ID), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
		return c.DeleteVirtualUpstream(ctx, opts.ID)
	})
}

// changeVR runs a call that answers with a registry and prints the
// registry; a failure names what was being done.
func changeVR(a api, what string, call func(c *adminclient.Client) (adminclient.VirtualRegistry, error)) error {
	c, err := a.Client()
	if err != nil {
		return err
	}
	r, err := call(c)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return printVR(a, r)
}

// printVR prints a registry: its fields, then its upstreams in order.
func printVR(a api, r adminclient.VirtualRegistry) error {
	p, err := a.Printer()
	if err != nil {
		return err
	}
	if p.JSON() {
		return p.PrintJSON(r)
	}
	if err := p.PrintFields(r, []output.Field{
		{Name: "ID", Value: shortID(r.ID)},
		{Name: "Name", Value: r.Name},
		{Name: "Group", Value: r.GroupPath},
		{Name: "Description", Value: r.Description},
		{Name: "Pull prefix", Value: r.PullPrefix},
	}); err != nil {
		return err
	}
	if len(r.Upstreams) == 0 {
		_, err := fmt.Fprintf(a.IO.Out, "No upstreams yet: add one with `dproxy virtual-registry upstream add %s <name> <url>`\n", shortID(r.ID))
		return err
	}
	t := output.Table{Header: []string{"POS", "UPSTREAM ID", "NAME", "URL", "USERNAME", "PASSWORD", "CACHE VALIDITY"}}
	for _, u := range r.Upstreams {
		pw, validity := "-", strconv.Itoa(u.CacheValidityHours)+"h"
		if u.PasswordSet {
			pw = "set"
		}
		if u.CacheValidityHours == 0 {
			validity = "forever"
		}
		t.Rows = append(t.Rows, []string{strconv.Itoa(u.Position), shortID(u.ID), u.Name, u.URL, u.Username, pw, validity})
	}
	return p.PrintTable(t)
}

type vrCacheListOptions struct {
	api
	UpstreamID string
}

func newCmdVRCacheList(f *cmdutil.Factory, runF func(context.Context, *vrCacheListOptions) error) *cobra.Command {
	opts := &vrCacheListOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "list <upstream-id>",
		Short:             "List an upstream's cache entries",
		Example:           "  $ dproxy virtual-registry cache list 3 -o json",
		Args:              exactArgs(1, "an upstream id"),
		ValidArgsFunction: newCompleter(f).upstreamIDs(false),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			opts.UpstreamID = id
			return dispatch(cmd, opts, runF, runVRCacheList)
		},
	}
}

func runVRCacheList(ctx context.Context, opts *vrCacheListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	entries, err := c.VirtualCacheEntries(ctx, opts.UpstreamID)
	if err != nil {
		return fmt.Errorf("list the cache of upstream %s: %w", opts.UpstreamID, err)
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	t := output.Table{Header: []string{"PATH", "DIGEST", "SIZE", "UPSTREAM CHECKED", "READ"}}
	for _, e := range entries {
		t.Rows = append(t.Rows, []string{e.Path, e.Digest, p.Size(int64(e.Size)), p.Time(e.UpstreamCheckedAt), p.Time(e.ReadAt)})
	}
	return p.Print(entries, t)
}

// vrCacheEntryDeleted is what `virtual-registry cache delete -o json` prints.
type vrCacheEntryDeleted struct {
	UpstreamID string `json:"upstreamId"`
	Path       string `json:"path"`
	Deleted    bool   `json:"deleted"`
}

type vrCacheDeleteOptions struct {
	api
	UpstreamID string
	Path       string
}

func newCmdVRCacheDelete(f *cmdutil.Factory, runF func(context.Context, *vrCacheDeleteOptions) error) *cobra.Command {
	opts := &vrCacheDeleteOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "delete <upstream-id> <path>",
		Short:             "Delete one cache entry of an upstream; the next pull fetches it again",
		Example:           "  $ dproxy virtual-registry cache delete 3 library/alpine/manifests/latest",
		Args:              exactArgs(2, "an upstream id and an entry path"),
		ValidArgsFunction: args(newCompleter(f).upstreamIDs(false)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			opts.UpstreamID, opts.Path = id, args[1]
			return dispatch(cmd, opts, runF, runVRCacheDelete)
		},
	}
}

func runVRCacheDelete(ctx context.Context, opts *vrCacheDeleteOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	if err := c.DeleteVirtualCacheEntry(ctx, opts.UpstreamID, opts.Path); err != nil {
		return fmt.Errorf("delete cache entry %s of upstream %s: %w", opts.Path, opts.UpstreamID, err)
	}
	return p.Message(vrCacheEntryDeleted{UpstreamID: opts.UpstreamID, Path: opts.Path, Deleted: true},
		fmt.Sprintf("Deleted %s from the cache of upstream %s", opts.Path, opts.UpstreamID))
}

// vrCacheCleared is what `virtual-registry cache clear -o json` prints;
// UpstreamID is empty when every upstream's cache was cleared.
type vrCacheCleared struct {
	RegistryID     string `json:"registryId"`
	UpstreamID     string `json:"upstreamId"`
	DeletedEntries int    `json:"deletedEntries"`
}

// vrCacheClearOptions name the registry and, when only one upstream's
// cache is cleared, that upstream.
type vrCacheClearOptions struct {
	api
	RegistryID string
	UpstreamID string
	Yes        bool
}

func newCmdVRCacheClear(f *cmdutil.Factory, runF func(context.Context, *vrCacheClearOptions) error) *cobra.Command {
	opts := &vrCacheClearOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "clear <registry-id> [--upstream <upstream-id>] [--yes]",
		Short: "Clear the cache of a virtual registry, or of one of its upstreams",
		Long:  "Delete every cache entry of a virtual registry's upstreams, or of one (owner). Asks on a terminal; needs --yes otherwise.",
		Example: "  $ dproxy virtual-registry cache clear 1 --yes\n" +
			"  $ dproxy virtual-registry cache clear 1 --upstream 3 --yes",
		Args:              exactArgs(1, "a virtual registry id"),
		ValidArgsFunction: newCompleter(f).registryIDs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			opts.RegistryID = id
			if opts.UpstreamID != "" {
				if opts.UpstreamID, err = vrID("upstream", opts.UpstreamID); err != nil {
					return err
				}
			}
			return dispatch(cmd, opts, runF, runVRCacheClear)
		},
	}
	cmd.Flags().StringVar(&opts.UpstreamID, "upstream", "", "only this upstream's cache")
	complete(cmd, "upstream", newCompleter(f).upstreamIDs(true))
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func runVRCacheClear(ctx context.Context, opts *vrCacheClearOptions) error {
	what := "every upstream of virtual registry " + opts.RegistryID
	if opts.UpstreamID != "" {
		what = "upstream " + opts.UpstreamID + " of virtual registry " + opts.RegistryID
	}
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
		// The question says what goes: the entries cached now.
		r, err := c.VirtualRegistry(ctx, opts.RegistryID)
		if err != nil {
			return fmt.Errorf("show virtual registry %s: %w", opts.RegistryID, err)
		}
		var n int
		var size int64
		for _, u := range r.Upstreams {
			if opts.UpstreamID != "" && shortID(u.ID) != shortID(opts.UpstreamID) {
				continue
			}
			entries, err := c.VirtualCacheEntries(ctx, u.ID)
			if err != nil {
				return fmt.Errorf("list the cache of upstream %s: %w", shortID(u.ID), err)
			}
			n += len(entries)
			for _, e := range entries {
				size += int64(e.Size)
			}
		}
		if n == 0 {
			return p.Message(vrCacheCleared{RegistryID: opts.RegistryID, UpstreamID: opts.UpstreamID}, "Nothing is cached for "+what+": nothing to clear")
		}
		q := fmt.Sprintf("Clear %s (%s) cached for %s? Their next pulls go upstream.", plural(n, "cache entry", "cache entries"), units.Size(size), what)
		if err := confirm(opts.IO, false, q); err != nil {
			return err
		}
	}
	n, err := c.ClearVirtualCache(ctx, opts.RegistryID, opts.UpstreamID)
	if err != nil {
		return fmt.Errorf("clear the cache of %s: %w", what, err)
	}
	return p.Message(vrCacheCleared{RegistryID: opts.RegistryID, UpstreamID: opts.UpstreamID, DeletedEntries: n},
		fmt.Sprintf("Cleared the cache of %s: %d entries", what, n))
}
