package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

type loginOptions struct {
	IO     *cmdutil.IOStreams
	Getenv func(string) string
	Server string
	Token  string
	Output string
}

// loggedIn is what `login -o json` prints.
type loggedIn struct {
	Server   string `json:"server"`
	Username string `json:"username"`
	Profile  string `json:"profile"`
}

func newCmdLogin(f *cmdutil.Factory, runF func(context.Context, *loginOptions) error) *cobra.Command {
	opts := &loginOptions{IO: f.IOStreams, Getenv: f.Getenv}
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "login [--server URL] [--token-stdin]",
		Short: "Save a server and an API token to the profile",
		Long: "Verify an API token (with the api scope) against a dproxy server and save both to\n" +
			"$XDG_CONFIG_HOME/dproxy/config.yaml (default ~/.config/dproxy/config.yaml, mode 0600).\n" +
			"The token is read from stdin with --token-stdin, or asked for without echo on a terminal.\n" +
			"--server defaults to $DPROXY_SERVER, else " + cmdutil.DefaultServer + ".",
		Example: "  $ dproxy login --server https://dproxy.example.com\n" +
			"  $ cat dproxy-data/initial_admin_token | dproxy login --server http://127.0.0.1:5000 --token-stdin",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := cmdutil.NewPrinter(opts.IO, opts.Output); err != nil {
				return err
			}
			if opts.Server == "" {
				opts.Server = opts.Getenv("DPROXY_SERVER")
			}
			if opts.Server == "" {
				opts.Server = cmdutil.DefaultServer
			}
			if !fromStdin && !opts.IO.IsStdinTTY() {
				return &cmdutil.FlagError{Err: errors.New("no terminal to ask for the token: pass it on stdin with --token-stdin")}
			}
			tok, err := opts.IO.ReadSecret("API token for " + opts.Server)
			if err != nil {
				return err
			}
			opts.Token = tok
			return dispatch(cmd, opts, runF, runLogin)
		},
	}
	cmd.Flags().StringVar(&opts.Server, "server", "", "dproxy server URL")
	cmd.Flags().BoolVar(&fromStdin, "token-stdin", false, "read the token from stdin")
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func runLogin(ctx context.Context, opts *loginOptions) error {
	c, err := adminclient.New(opts.Server, opts.Token, adminclient.Options{})
	if err != nil {
		return &cmdutil.FlagError{Err: err}
	}
	me, err := c.CurrentUser(ctx)
	if err != nil {
		return fmt.Errorf("verify the token: %w", err)
	}
	path, err := cmdutil.SaveProfile(opts.Getenv, cmdutil.Profile{Server: c.Server(), Token: opts.Token})
	if err != nil {
		return err
	}
	p, err := cmdutil.NewPrinter(opts.IO, opts.Output)
	if err != nil {
		return err
	}
	return p.Message(loggedIn{Server: c.Server(), Username: me.Username, Profile: path},
		fmt.Sprintf("Logged in to %s as %s; saved to %s", c.Server(), me.Username, path))
}

type logoutOptions struct {
	IO     *cmdutil.IOStreams
	Getenv func(string) string
	Output string
}

// loggedOut is what `logout -o json` prints; Server is empty when no
// profile was saved.
type loggedOut struct {
	Server string `json:"server"`
	// LoggedOut: a token was removed from the profile.
	LoggedOut bool `json:"loggedOut"`
}

func newCmdLogout(f *cmdutil.Factory, runF func(context.Context, *logoutOptions) error) *cobra.Command {
	opts := &logoutOptions{IO: f.IOStreams, Getenv: f.Getenv}
	cmd := &cobra.Command{
		Use:     "logout",
		Short:   "Remove the saved token from the profile",
		Example: "  $ dproxy logout",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return dispatch(cmd, opts, runF, runLogout) },
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func runLogout(_ context.Context, opts *logoutOptions) error {
	p, err := cmdutil.NewPrinter(opts.IO, opts.Output)
	if err != nil {
		return err
	}
	prof, err := cmdutil.LoadProfile(opts.Getenv)
	if err != nil {
		return err
	}
	if prof.Token == "" {
		return p.Message(loggedOut{Server: prof.Server}, "Not logged in")
	}
	prof.Token = ""
	if _, err := cmdutil.SaveProfile(opts.Getenv, prof); err != nil {
		return err
	}
	return p.Message(loggedOut{Server: prof.Server, LoggedOut: true}, "Logged out of "+prof.Server)
}
