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
	_, err = fmt.Fprintf(opts.IO.Out, "Logged in to %s as %s; saved to %s\n", c.Server(), me.Username, path)
	return err
}

type logoutOptions struct {
	IO     *cmdutil.IOStreams
	Getenv func(string) string
}

func newCmdLogout(f *cmdutil.Factory, runF func(context.Context, *logoutOptions) error) *cobra.Command {
	opts := &logoutOptions{IO: f.IOStreams, Getenv: f.Getenv}
	return &cobra.Command{
		Use:     "logout",
		Short:   "Remove the saved token from the profile",
		Example: "  $ dproxy logout",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return dispatch(cmd, opts, runF, runLogout) },
	}
}

func runLogout(_ context.Context, opts *logoutOptions) error {
	prof, err := cmdutil.LoadProfile(opts.Getenv)
	if err != nil {
		return err
	}
	if prof.Token == "" {
		_, err = fmt.Fprintln(opts.IO.Out, "Not logged in")
		return err
	}
	prof.Token = ""
	if _, err := cmdutil.SaveProfile(opts.Getenv, prof); err != nil {
		return err
	}
	_, err = fmt.Fprintf(opts.IO.Out, "Logged out of %s\n", prof.Server)
	return err
}
