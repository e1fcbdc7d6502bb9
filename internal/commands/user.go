package commands

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
)

func newCmdUser(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user <command>",
		Short: "Manage users (instance admins)",
		Example: "  $ dproxy user create alice\n" +
			"  $ printf %s \"$PW\" | dproxy user set-password alice --password-stdin\n" +
			"  $ dproxy user list",
	}
	addConnectionFlags(cmd, f)
	cmd.AddCommand(newCmdUserCreate(f, nil), newCmdUserList(f, nil), newCmdUserSetPassword(f, nil), newCmdUserDelete(f, nil))
	return cmd
}

type userCreateOptions struct {
	api
	Username      string
	Admin         bool
	PasswordStdin bool
	Password      *string
}

func newCmdUserCreate(f *cmdutil.Factory, runF func(context.Context, *userCreateOptions) error) *cobra.Command {
	opts := &userCreateOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "create <username> [--admin] [--password-stdin]",
		Short: "Create a user",
		Long: "Create a user (instance admin). Without --password-stdin the user has no password and signs\n" +
			"in with tokens only (`dproxy token create --user NAME`). A password is never a flag value.",
		Example: "  $ dproxy user create alice\n" +
			"  $ printf %s \"$PW\" | dproxy user create bob --password-stdin --admin",
		Args: exactArgs(1, "a username"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			if opts.PasswordStdin {
				pw, err := opts.IO.ReadSecret("password for " + opts.Username)
				if err != nil {
					return err
				}
				opts.Password = &pw
			}
			return dispatch(cmd, opts, runF, runUserCreate)
		},
	}
	cmd.Flags().BoolVar(&opts.Admin, "admin", false, "make the user an instance admin")
	cmd.Flags().BoolVar(&opts.PasswordStdin, "password-stdin", false, "read a password from stdin")
	return cmd
}

func runUserCreate(ctx context.Context, opts *userCreateOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	u, err := c.CreateUser(ctx, adminclient.UserInput{Username: opts.Username, Password: opts.Password, Admin: &opts.Admin})
	if err != nil {
		return fmt.Errorf("create user %s: %w", opts.Username, err)
	}
	return printUser(opts.api, u)
}

func printUser(a api, u adminclient.User) error {
	p, err := a.Printer()
	if err != nil {
		return err
	}
	return p.PrintFields(u, []output.Field{
		{Name: "User", Value: u.Username},
		{Name: "Admin", Value: strconv.FormatBool(u.Admin)},
		{Name: "Password set", Value: strconv.FormatBool(u.PasswordSet)},
		{Name: "Created", Value: p.Time(u.CreatedAt)},
	})
}

type userListOptions struct{ api }

func newCmdUserList(f *cmdutil.Factory, runF func(context.Context, *userListOptions) error) *cobra.Command {
	opts := &userListOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List users",
		Example: "  $ dproxy user list -o json",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return dispatch(cmd, opts, runF, runUserList) },
	}
}

func runUserList(ctx context.Context, opts *userListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	users, err := c.AllUsers(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	t := output.Table{Header: []string{"USER", "ADMIN", "PASSWORD", "CREATED"}}
	for _, u := range users {
		t.Rows = append(t.Rows, []string{u.Username, strconv.FormatBool(u.Admin), strconv.FormatBool(u.PasswordSet), p.Time(u.CreatedAt)})
	}
	return p.Print(users, t)
}

type userSetPasswordOptions struct {
	api
	Username string
	Password string
}

func newCmdUserSetPassword(f *cmdutil.Factory, runF func(context.Context, *userSetPasswordOptions) error) *cobra.Command {
	opts := &userSetPasswordOptions{api: newAPI(f)}
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "set-password <username> [--password-stdin]",
		Short: "Set a user's password",
		Long: "Set a user's password (instance admin, or the user themself). The password is read from\n" +
			"stdin with --password-stdin, or asked for without echo on a terminal; never a flag value.",
		Example: "  $ dproxy user set-password alice\n" +
			"  $ printf %s \"$PW\" | dproxy user set-password alice --password-stdin",
		Args: exactArgs(1, "a username"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			if !fromStdin && !opts.IO.IsStdinTTY() {
				return &cmdutil.FlagError{Err: fmt.Errorf("no terminal to ask for the password: pass it on stdin with --password-stdin")}
			}
			pw, err := opts.IO.ReadSecret("new password for " + opts.Username)
			if err != nil {
				return err
			}
			opts.Password = pw
			return dispatch(cmd, opts, runF, runUserSetPassword)
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func runUserSetPassword(ctx context.Context, opts *userSetPasswordOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if _, err := c.UpdateUser(ctx, adminclient.UserInput{Username: opts.Username, Password: &opts.Password}); err != nil {
		return fmt.Errorf("set the password of %s: %w", opts.Username, err)
	}
	_, err = fmt.Fprintf(opts.IO.Out, "Set the password of %s\n", opts.Username)
	return err
}

type userDeleteOptions struct {
	api
	Username string
	Yes      bool
}

func newCmdUserDelete(f *cmdutil.Factory, runF func(context.Context, *userDeleteOptions) error) *cobra.Command {
	opts := &userDeleteOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:     "delete <username> [--yes]",
		Short:   "Delete a user with their personal tokens and memberships",
		Example: "  $ dproxy user delete alice --yes",
		Args:    exactArgs(1, "a username"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			return dispatch(cmd, opts, runF, runUserDelete)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func runUserDelete(ctx context.Context, opts *userDeleteOptions) error {
	if err := confirm(opts.IO, opts.Yes, fmt.Sprintf("Delete user %s with their tokens and memberships?", opts.Username)); err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	if err := c.DeleteUser(ctx, opts.Username); err != nil {
		return fmt.Errorf("delete user %s: %w", opts.Username, err)
	}
	_, err = fmt.Fprintf(opts.IO.Out, "Deleted user %s\n", opts.Username)
	return err
}
