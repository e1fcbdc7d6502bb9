package commands

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
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
	addConnectionFlags(cmd, f)
	up := &cobra.Command{
		Use:   "upstream <command>",
		Short: "Manage the upstreams of a virtual registry",
		Long:  "Upstreams are asked in order (position 0 first). Passwords are read from stdin and never shown.",
		Example: "  $ dproxy virtual-registry upstream add 1 quay https://quay.io\n" +
			"  $ dproxy virtual-registry upstream move 3 --position 0",
	}
	up.RunE = nounHelp
	up.AddCommand(newCmdVRUpstreamAdd(f), newCmdVRUpstreamList(f), newCmdVRUpstreamUpdate(f),
		newCmdVRUpstreamMove(f), newCmdVRUpstreamDelete(f))
	cache := &cobra.Command{
		Use:   "cache <command>",
		Short: "List, delete and clear what the upstreams of a virtual registry have cached",
		Long:  "Each upstream has its own cache: manifests (<image>/manifests/<ref>) and blobs (blobs/<digest>).",
		Example: "  $ dproxy virtual-registry cache list 3\n" +
			"  $ dproxy virtual-registry cache clear 1 --yes",
	}
	cache.RunE = nounHelp
	cache.AddCommand(newCmdVRCacheList(f), newCmdVRCacheDelete(f), newCmdVRCacheClear(f))
	cmd.AddCommand(newCmdVRCreate(f), newCmdVRList(f), newCmdVRShow(f), newCmdVRUpdate(f), newCmdVRDelete(f), up, cache)
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

func newCmdVRCreate(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	var description string
	cmd := &cobra.Command{
		Use:     "create <group> <name> [--description TEXT]",
		Short:   "Create a virtual registry in a top-level group",
		Example: "  $ dproxy virtual-registry create acme all --description 'hub, quay and ours'",
		Args:    exactArgs(2, "a top-level group path and a name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return changeVR(a, fmt.Sprintf("create virtual registry %s in %s", args[1], args[0]), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
				return c.CreateVirtualRegistry(cmd.Context(), args[0], args[1], description)
			})
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "what the registry is for")
	return cmd
}

func newCmdVRList(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	return &cobra.Command{
		Use:     "list <group>",
		Short:   "List a group's virtual registries",
		Example: "  $ dproxy virtual-registry list acme",
		Args:    exactArgs(1, "a group path"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.Client()
			if err != nil {
				return err
			}
			rs, err := c.VirtualRegistries(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("list the virtual registries of %s: %w", args[0], err)
			}
			p, err := a.Printer()
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
		},
	}
}

func newCmdVRShow(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	return &cobra.Command{
		Use:     "show <id>",
		Short:   "Show a virtual registry and its upstreams in order",
		Example: "  $ dproxy virtual-registry show 1 -o json",
		Args:    exactArgs(1, "a virtual registry id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			return changeVR(a, fmt.Sprintf("show virtual registry %s", args[0]), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
				return c.VirtualRegistry(cmd.Context(), id)
			})
		},
	}
}

func newCmdVRUpdate(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	var name, description string
	cmd := &cobra.Command{
		Use:     "update <id> [--name NAME] [--description TEXT]",
		Short:   "Rename a virtual registry or change its description",
		Example: "  $ dproxy virtual-registry update 1 --name public",
		Args:    exactArgs(1, "a virtual registry id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			in := adminclient.VirtualRegistryInput{ID: id}
			if cmd.Flags().Changed("name") {
				in.Name = &name
			}
			if cmd.Flags().Changed("description") {
				in.Description = &description
			}
			if in.Name == nil && in.Description == nil {
				return &cmdutil.FlagError{Err: errors.New("nothing to change: pass --name or --description")}
			}
			return changeVR(a, fmt.Sprintf("update virtual registry %s", args[0]), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
				return c.UpdateVirtualRegistry(cmd.Context(), in)
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new name")
	cmd.Flags().StringVar(&description, "description", "", "new description")
	return cmd
}

func newCmdVRDelete(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	var yes bool
	cmd := &cobra.Command{
		Use:     "delete <id> [--yes]",
		Short:   "Delete a virtual registry and its upstreams",
		Long:    "Delete a virtual registry and its upstreams (owner). Asks on a terminal; needs --yes otherwise.",
		Example: "  $ dproxy virtual-registry delete 1 --yes",
		Args:    exactArgs(1, "a virtual registry id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			if err := confirm(a.IO, yes, fmt.Sprintf("Delete virtual registry %s and its upstreams?", args[0])); err != nil {
				return err
			}
			c, err := a.Client()
			if err != nil {
				return err
			}
			if err := c.DeleteVirtualRegistry(cmd.Context(), id); err != nil {
				return fmt.Errorf("delete virtual registry %s: %w", args[0], err)
			}
			_, err = fmt.Fprintf(a.IO.Out, "Deleted virtual registry %s\n", args[0])
			return err
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
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

func newCmdVRUpstreamAdd(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	u := &upstreamFlags{}
	cmd := &cobra.Command{
		Use:   "add <registry-id> <name> <url> [--username U --password-stdin] [--cache-validity-hours N]",
		Short: "Add an upstream after the registry's last one",
		Example: "  $ dproxy virtual-registry upstream add 1 hub https://registry-1.docker.io --cache-validity-hours 6\n" +
			"  $ printf %s \"$PW\" | dproxy virtual-registry upstream add 1 ours https://registry.example.com --username bot --password-stdin",
		Args: exactArgs(3, "a virtual registry id, an upstream name and its URL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			in := adminclient.VirtualUpstreamInput{RegistryID: id, Name: &args[1], URL: &args[2]}
			if err := u.input(cmd, a.IO, &in); err != nil {
				return err
			}
			return changeVR(a, fmt.Sprintf("add upstream %s to virtual registry %s", args[1], args[0]), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
				return c.AddVirtualUpstream(cmd.Context(), in)
			})
		},
	}
	u.bind(cmd, false)
	return cmd
}

func newCmdVRUpstreamList(f *cmdutil.Factory) *cobra.Command {
	cmd := newCmdVRShow(f)
	cmd.Use = "list <registry-id>"
	cmd.Short = "List a virtual registry's upstreams in order"
	cmd.Example = "  $ dproxy virtual-registry upstream list 1"
	return cmd
}

func newCmdVRUpstreamUpdate(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	u := &upstreamFlags{}
	cmd := &cobra.Command{
		Use:   "update <upstream-id> [--name N] [--url URL] [--username U] [--password-stdin | --clear-credentials] [--cache-validity-hours N]",
		Short: "Change an upstream",
		Example: "  $ dproxy virtual-registry upstream update 3 --cache-validity-hours 0\n" +
			"  $ printf %s \"$NEW_PW\" | dproxy virtual-registry upstream update 3 --password-stdin",
		Args: exactArgs(1, "an upstream id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			in := adminclient.VirtualUpstreamInput{ID: id}
			if err := u.input(cmd, a.IO, &in); err != nil {
				return err
			}
			if in == (adminclient.VirtualUpstreamInput{ID: id}) {
				return &cmdutil.FlagError{Err: errors.New("nothing to change: pass --name, --url, --username, --password-stdin, --clear-credentials or --cache-validity-hours")}
			}
			return changeVR(a, fmt.Sprintf("update upstream %s", args[0]), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
				return c.UpdateVirtualUpstream(cmd.Context(), in)
			})
		},
	}
	u.bind(cmd, true)
	return cmd
}

func newCmdVRUpstreamMove(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	var position int
	cmd := &cobra.Command{
		Use:     "move <upstream-id> --position N",
		Short:   "Move an upstream to a position (0 = asked first)",
		Example: "  $ dproxy virtual-registry upstream move 3 --position 0",
		Args:    exactArgs(1, "an upstream id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("position") || position < 0 {
				return &cmdutil.FlagError{Err: errors.New("--position is required: 0 for the upstream asked first, 1 for the next, …")}
			}
			return changeVR(a, fmt.Sprintf("move upstream %s", args[0]), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
				return c.MoveVirtualUpstream(cmd.Context(), id, position)
			})
		},
	}
	cmd.Flags().IntVar(&position, "position", 0, "new position, 0 being asked first")
	return cmd
}

func newCmdVRUpstreamDelete(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	return &cobra.Command{
		Use:     "delete <upstream-id>",
		Short:   "Delete an upstream; those after it move up",
		Example: "  $ dproxy virtual-registry upstream delete 3",
		Args:    exactArgs(1, "an upstream id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			return changeVR(a, fmt.Sprintf("delete upstream %s", args[0]), func(c *adminclient.Client) (adminclient.VirtualRegistry, error) {
				return c.DeleteVirtualUpstream(cmd.Context(), id)
			})
		},
	}
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

func newCmdVRCacheList(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	return &cobra.Command{
		Use:     "list <upstream-id>",
		Short:   "List an upstream's cache entries",
		Example: "  $ dproxy virtual-registry cache list 3 -o json",
		Args:    exactArgs(1, "an upstream id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			c, err := a.Client()
			if err != nil {
				return err
			}
			entries, err := c.VirtualCacheEntries(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("list the cache of upstream %s: %w", args[0], err)
			}
			p, err := a.Printer()
			if err != nil {
				return err
			}
			t := output.Table{Header: []string{"PATH", "DIGEST", "SIZE", "UPSTREAM CHECKED", "READ"}}
			for _, e := range entries {
				t.Rows = append(t.Rows, []string{e.Path, e.Digest, p.Size(int64(e.Size)), p.Time(e.UpstreamCheckedAt), p.Time(e.ReadAt)})
			}
			return p.Print(entries, t)
		},
	}
}

func newCmdVRCacheDelete(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	return &cobra.Command{
		Use:     "delete <upstream-id> <path>",
		Short:   "Delete one cache entry of an upstream; the next pull fetches it again",
		Example: "  $ dproxy virtual-registry cache delete 3 library/alpine/manifests/latest",
		Args:    exactArgs(2, "an upstream id and an entry path"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("upstream", args[0])
			if err != nil {
				return err
			}
			c, err := a.Client()
			if err != nil {
				return err
			}
			if err := c.DeleteVirtualCacheEntry(cmd.Context(), id, args[1]); err != nil {
				return fmt.Errorf("delete cache entry %s of upstream %s: %w", args[1], args[0], err)
			}
			_, err = fmt.Fprintf(a.IO.Out, "Deleted %s from the cache of upstream %s\n", args[1], args[0])
			return err
		},
	}
}

func newCmdVRCacheClear(f *cmdutil.Factory) *cobra.Command {
	a := newAPI(f)
	var upstreamID string
	var yes bool
	cmd := &cobra.Command{
		Use:   "clear <registry-id> [--upstream <upstream-id>] [--yes]",
		Short: "Clear the cache of a virtual registry, or of one of its upstreams",
		Long:  "Delete every cache entry of a virtual registry's upstreams, or of one (owner). Asks on a terminal; needs --yes otherwise.",
		Example: "  $ dproxy virtual-registry cache clear 1 --yes\n" +
			"  $ dproxy virtual-registry cache clear 1 --upstream 3 --yes",
		Args: exactArgs(1, "a virtual registry id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := vrID("virtual registry", args[0])
			if err != nil {
				return err
			}
			what := "every upstream of virtual registry " + args[0]
			if upstreamID != "" {
				if upstreamID, err = vrID("upstream", upstreamID); err != nil {
					return err
				}
				what = "upstream " + upstreamID + " of virtual registry " + args[0]
			}
			if err := confirm(a.IO, yes, "Clear the cache of "+what+"?"); err != nil {
				return err
			}
			c, err := a.Client()
			if err != nil {
				return err
			}
			n, err := c.ClearVirtualCache(cmd.Context(), id, upstreamID)
			if err != nil {
				return fmt.Errorf("clear the cache of %s: %w", what, err)
			}
			_, err = fmt.Fprintf(a.IO.Out, "Cleared the cache of %s: %d entries\n", what, n)
			return err
		},
	}
	cmd.Flags().StringVar(&upstreamID, "upstream", "", "only this upstream's cache")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}
