package commands

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
)

func newCmdMember(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member <command>",
		Short: "Manage who belongs to a group and with which role",
		Long: "Roles: guest < reporter < developer < maintainer < owner. A membership applies to the\n" +
			"group's subgroups. Pulling needs guest; changing settings or purging needs owner.",
		Example: "  $ dproxy member add acme alice --role guest\n" +
			"  $ dproxy member list acme\n" +
			"  $ dproxy member remove acme alice",
	}
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(newCmdMemberAdd(f, nil), newCmdMemberRemove(f, nil), newCmdMemberList(f, nil))
	return cmd
}

type memberAddOptions struct {
	api
	Group    string
	Username string
	Role     adminclient.Role
}

func newCmdMemberAdd(f *cmdutil.Factory, runF func(context.Context, *memberAddOptions) error) *cobra.Command {
	opts := &memberAddOptions{api: newAPI(f)}
	var role string
	cmd := &cobra.Command{
		Use:   "add <group> <username> --role ROLE",
		Short: "Add a member to a group, or change their role",
		Example: "  $ dproxy member add acme alice --role guest\n" +
			"  $ dproxy member add acme/platform bob --role owner",
		Args:              exactArgs(2, "a group path and a username"),
		ValidArgsFunction: args(newCompleter(f).groups(), newCompleter(f).users()),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group, opts.Username = args[0], args[1]
			if !cmd.Flags().Changed("role") {
				return requiredFlag(cmd, "role", "the member's role: guest, reporter, developer, maintainer or owner")
			}
			r, err := adminclient.ParseRole(role)
			if err != nil {
				return &cmdutil.FlagError{Err: err}
			}
			opts.Role = r
			return dispatch(cmd, opts, runF, runMemberAdd)
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "guest, reporter, developer, maintainer or owner (required)")
	complete(cmd, "role", fixed(roleNames...))
	return cmd
}

func runMemberAdd(ctx context.Context, opts *memberAddOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	m, err := c.AddMember(ctx, opts.Group, opts.Username, opts.Role)
	if err != nil {
		return fmt.Errorf("add %s to %s: %w", opts.Username, opts.Group, err)
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	if p.JSON() {
		return p.PrintJSON(m)
	}
	_, err = fmt.Fprintf(opts.IO.Out, "%s is %s of %s\n", m.Username, roleWord(m.Role), m.GroupPath)
	return err
}

// memberRemoved is what `member remove -o json` prints.
type memberRemoved struct {
	GroupPath string `json:"groupPath"`
	Username  string `json:"username"`
	Removed   bool   `json:"removed"`
}

type memberRemoveOptions struct {
	api
	Group    string
	Username string
}

func newCmdMemberRemove(f *cmdutil.Factory, runF func(context.Context, *memberRemoveOptions) error) *cobra.Command {
	opts := &memberRemoveOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "remove <group> <username>",
		Aliases:           []string{"rm"},
		Short:             "Remove a member from a group",
		Example:           "  $ dproxy member remove acme alice",
		Args:              exactArgs(2, "a group path and a username"),
		ValidArgsFunction: args(newCompleter(f).groups(), newCompleter(f).members()),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group, opts.Username = args[0], args[1]
			return dispatch(cmd, opts, runF, runMemberRemove)
		},
	}
}

func runMemberRemove(ctx context.Context, opts *memberRemoveOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	if err := c.RemoveMember(ctx, opts.Group, opts.Username); err != nil {
		return fmt.Errorf("remove %s from %s: %w", opts.Username, opts.Group, err)
	}
	return p.Message(memberRemoved{GroupPath: opts.Group, Username: opts.Username, Removed: true},
		fmt.Sprintf("Removed %s from %s", opts.Username, opts.Group))
}

type memberListOptions struct {
	api
	Group string
}

func newCmdMemberList(f *cmdutil.Factory, runF func(context.Context, *memberListOptions) error) *cobra.Command {
	opts := &memberListOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "list <group>",
		Aliases:           []string{"ls"},
		Short:             "List a group's direct members",
		Example:           "  $ dproxy member list acme -o json",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			return dispatch(cmd, opts, runF, runMemberList)
		},
	}
}

func runMemberList(ctx context.Context, opts *memberListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	members, err := c.Members(ctx, opts.Group)
	if err != nil {
		return fmt.Errorf("list the members of %s: %w", opts.Group, err)
	}
	t := output.Table{Header: []string{"USER", "ROLE", "SINCE"}}
	for _, m := range members {
		t.Rows = append(t.Rows, []string{m.Username, roleWord(m.Role), p.Time(m.CreatedAt)})
	}
	if members == nil {
		members = []adminclient.Member{}
	}
	return p.Print(members, t)
}
