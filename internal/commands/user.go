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
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(newCmdUserCreate(f, nil), newCmdUserList(f, nil), newCmdUserSetPassword(f, nil),
		newCmdUserBlock(f, true, nil), newCmdUserBlock(f, false, nil), newCmdUserDelete(f, nil))
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
		{Name: "Blocked", Value: strconv.FormatBool(u.Blocked)},
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
	t := output.Table{Header: []string{"USER", "ADMIN", "PASSWORD", "BLOCKED", "CREATED"}}
	for _, u := range users {
		t.Rows = append(t.Rows, []string{u.Username, strconv.FormatBool(u.Admin), strconv.FormatBool(u.PasswordSet),
			strconv.FormatBool(u.Blocked), p.Time(u.CreatedAt)})
	}
	return p.Print(users, t)
}

type userSetPasswordOptions struct {
	api
	Username        string
	Password        string
	CurrentPassword *string
}

func newCmdUserSetPassword(f *cmdutil.Factory, runF func(context.Context, *userSetPasswordOptions) error) *cobra.Command {
	opts := &userSetPasswordOptions{api: newAPI(f)}
	var fromStdin, current bool
	cmd := &cobra.Command{
		Use:   "set-password <username> [--current-password] [--password-stdin]",
		Short: "Set a user's password",
		Long: "Set a user's password (instance admin, or the user themself). The password is read from\n" +
			"stdin with --password-stdin, or asked for without echo on a terminal; never a flag value.\n\n" +
			"Changing your own password with a token needs your current password too, unless you are an\n" +
			"instance admin: pass --current-password, and it is asked for first (with --password-stdin,\n" +
			"stdin holds two lines: the current password, then the new one). A wrong current password\n" +
			"counts as a failed sign-in.\n\n" +
			"A new password ends the user's sessions: refresh and registry tokens issued before stop\n" +
			"working, and clients sign in again. Personal access tokens keep working.",
		Example: "  $ dproxy user set-password alice\n" +
			"  $ printf %s \"$PW\" | dproxy user set-password alice --password-stdin\n" +
			"  $ dproxy user set-password me --current-password\n" +
			"  $ printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | dproxy user set-password me --current-password --password-stdin",
		Args:              exactArgs(1, "a username"),
		ValidArgsFunction: newCompleter(f).users(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			if !fromStdin && !opts.IO.IsStdinTTY() {
				return &cmdutil.FlagError{Err: fmt.Errorf("no terminal to ask for the password: pass it on stdin with --password-stdin")}
			}
			if current {
				pw, err := opts.IO.ReadSecret("current password of " + opts.Username)
				if err != nil {
					return err
				}
				opts.CurrentPassword = &pw
			}
			pw, err := opts.IO.ReadSecret("new password for " + opts.Username)
			if err != nil {
				return err
			}
			opts.Password = pw
			return dispatch(cmd, opts, runF, runUserSetPassword)
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from stdin (after the current one with --current-password)")
	cmd.Flags().BoolVar(&current, "current-password", false, "give the current password too, as changing your own with a token needs")
	return cmd
}

func runUserSetPassword(ctx context.Context, opts *userSetPasswordOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	in := adminclient.UserInput{Username: opts.Username, Password: &opts.Password, CurrentPassword: opts.CurrentPassword}
	u, err := c.UpdateUser(ctx, in)
	if err != nil {
		return fmt.Errorf("set the password of %s: %w", opts.Username, err)
	}
	return p.Message(u, fmt.Sprintf("Set the password of %s; their earlier sessions have ended", opts.Username))
}

type userBlockOptions struct {
	api
	Username string
	Blocked  bool
}

// newCmdUserBlock makes `user block` (blocked) or `user unblock`.
func newCmdUserBlock(f *cmdutil.Factory, blocked bool, runF func(context.Context, *userBlockOptions) error) *cobra.Command {
	opts := &userBlockOptions{api: newAPI(f), Blocked: blocked}
	cmd := &cobra.Command{
		Use:   "block <username>",
		Short: "Block a user: no sign-in, and their sessions end",
		Long: "Block a user (instance admin). A blocked user cannot sign in, with a password or a personal\n" +
			"token, and every refresh or registry token issued to them stops working at once.\n" +
			"`dproxy user unblock` lets them sign in again; tokens issued before the block stay dead.",
		Example:           "  $ dproxy user block mallory",
		Args:              exactArgs(1, "a username"),
		ValidArgsFunction: newCompleter(f).users(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Username = args[0]
			return dispatch(cmd, opts, runF, runUserBlock)
		},
	}
	if !blocked {
		cmd.Use = "unblock <username>"
		cmd.Short = "Unblock a user so they can sign in again"
		cmd.Long = "Unblock a user (instance admin): they can sign in again with their password and personal tokens."
		cmd.Example = "  $ dproxy user unblock mallory"
	}
	return cmd
}

func runUserBlock(ctx context.Context, opts *userBlockOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	verb, done := "unblock", "Unblocked"
	if opts.Blocked {
		verb, done = "block", "Blocked"
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	u, err := c.UpdateUser(ctx, adminclient.UserInput{Username: opts.Username, Blocked: &opts.Blocked})
	if err != nil {
		return fmt.Errorf("%s user %s: %w", verb, opts.Username, err)
	}
	return p.Message(u, done+" user "+opts.Username)
}

// userDeleted is what `user delete -o json` prints.
type userDeleted struct {
	Username string `json:"username"`
	Deleted  bool   `json:"deleted"`
}

type userDeleteOptions struct {
	api
	Username string
	Yes      bool
}

func newCmdUserDelete(f *cmdutil.Factory, runF func(context.Context, *userDeleteOptions) error) *cobra.Command {
	opts := &userDeleteOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:               "delete <username> [--yes]",
		Short:             "Delete a user with their personal tokens and memberships",
		Example:           "  $ dproxy user delete alice --yes",
		Args:              exactArgs(1, "a username"),
		ValidArgsFunction: newCompleter(f).users(),
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
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	if err := c.DeleteUser(ctx, opts.Username); err != nil {
		return fmt.Errorf("delete user %s: %w", opts.Username, err)
	}
	return p.Message(userDeleted{Username: opts.Username, Deleted: true}, "Deleted user "+opts.Username)
}
