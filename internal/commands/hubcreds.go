package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
)

func newCmdHubCreds(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hub-creds <command>",
		Short: "Manage the Docker Hub credentials a group pulls with",
		Long: "A group pulls from Docker Hub with its own identity and secret, else the instance default\n" +
			"(--default), else anonymously. The secret is encrypted at rest and never shown again.",
		Example: "  $ printf %s \"$HUB_TOKEN\" | dproxy hub-creds set acme --identity acmebot --secret-stdin\n" +
			"  $ dproxy hub-creds show acme\n" +
			"  $ dproxy hub-creds clear acme",
	}
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(newCmdHubCredsSet(f, nil), newCmdHubCredsClear(f, nil), newCmdHubCredsShow(f, nil))
	return cmd
}

// hubCredsTarget is a group, or the instance default with --default.
type hubCredsTarget struct {
	Group   string
	Default bool
}

func (t *hubCredsTarget) bind(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&t.Default, "default", false, "the instance default credentials (instance admin) instead of a group's")
}

// args takes the group argument, or none with --default.
func (t *hubCredsTarget) args(cmd *cobra.Command, args []string) error {
	switch {
	case t.Default && len(args) == 0:
		return nil
	case t.Default:
		return &cmdutil.FlagError{Err: fmt.Errorf("give a group or --default, not both; see '%s --help'", cmd.CommandPath())}
	case len(args) == 1:
		t.Group = args[0]
		return nil
	}
	return &cmdutil.FlagError{Err: fmt.Errorf("%s takes a group (or --default); see '%s --help'", cmd.CommandPath(), cmd.CommandPath())}
}

func (t hubCredsTarget) String() string {
	if t.Default {
		return "the instance default"
	}
	return t.Group
}

type hubCredsSetOptions struct {
	api
	hubCredsTarget
	Identity    string
	SecretStdin bool
	Secret      string
}

func newCmdHubCredsSet(f *cmdutil.Factory, runF func(context.Context, *hubCredsSetOptions) error) *cobra.Command {
	opts := &hubCredsSetOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "set {<group> | --default} --identity NAME [--secret-stdin]",
		Short: "Set the Docker Hub identity and secret of a group",
		Long: "Set a group's Docker Hub identity and secret (owner), or the instance default (--default,\n" +
			"instance admin). The secret is read from stdin with --secret-stdin, or asked for without\n" +
			"echo on a terminal; it is never a flag value, so it stays out of shell history and `ps`.",
		Example: "  $ printf %s \"$HUB_TOKEN\" | dproxy hub-creds set acme --identity acmebot --secret-stdin\n" +
			"  $ dproxy hub-creds set --default --identity ourbot",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.args(cmd, args); err != nil {
				return err
			}
			if opts.Identity == "" {
				return requiredFlag(cmd, "identity", "the Docker Hub username (identity and secret are set together; `dproxy hub-creds clear` removes both)")
			}
			if !opts.SecretStdin && !opts.IO.IsStdinTTY() {
				return &cmdutil.FlagError{Err: errors.New("the Docker Hub secret is missing: pass it on stdin with --secret-stdin (identity and secret are set together)")}
			}
			secret, err := opts.IO.ReadSecret("Docker Hub secret for " + opts.Identity)
			if err != nil {
				return err
			}
			opts.Secret = secret
			return dispatch(cmd, opts, runF, runHubCredsSet)
		},
	}
	opts.bind(cmd)
	cmd.ValidArgsFunction = args(newCompleter(f).groups())
	cmd.Flags().StringVar(&opts.Identity, "identity", "", "Docker Hub username (required)")
	cmd.Flags().BoolVar(&opts.SecretStdin, "secret-stdin", false, "read the secret (password or access token) from stdin")
	return cmd
}

func runHubCredsSet(ctx context.Context, opts *hubCredsSetOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var creds adminclient.DockerHubCredentials
	if opts.Default {
		creds, err = c.UpdateInstanceDockerHubCredentials(ctx, opts.Identity, opts.Secret)
	} else {
		var s adminclient.ProxySetting
		s, err = c.UpdateProxySettings(ctx, adminclient.ProxySettingsInput{GroupPath: opts.Group, Identity: &opts.Identity, Secret: &opts.Secret})
		creds = adminclient.DockerHubCredentials{Identity: s.Identity, SecretSet: s.SecretSet}
	}
	if err != nil {
		return fmt.Errorf("set the Docker Hub credentials of %s: %w", opts.hubCredsTarget, err)
	}
	return printCreds(opts.api, opts.hubCredsTarget, creds)
}

type hubCredsClearOptions struct {
	api
	hubCredsTarget
}

func newCmdHubCredsClear(f *cmdutil.Factory, runF func(context.Context, *hubCredsClearOptions) error) *cobra.Command {
	opts := &hubCredsClearOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "clear {<group> | --default}",
		Short: "Remove the Docker Hub identity and secret of a group",
		Long:  "Remove a group's Docker Hub credentials; it then pulls with the instance default, else anonymously.",
		Example: "  $ dproxy hub-creds clear acme\n" +
			"  $ dproxy hub-creds clear --default",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.args(cmd, args); err != nil {
				return err
			}
			return dispatch(cmd, opts, runF, runHubCredsClear)
		},
	}
	opts.bind(cmd)
	cmd.ValidArgsFunction = args(newCompleter(f).groups())
	return cmd
}

func runHubCredsClear(ctx context.Context, opts *hubCredsClearOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var creds adminclient.DockerHubCredentials
	if opts.Default {
		creds, err = c.UpdateInstanceDockerHubCredentials(ctx, "", "")
	} else {
		empty := ""
		var s adminclient.ProxySetting
		s, err = c.UpdateProxySettings(ctx, adminclient.ProxySettingsInput{GroupPath: opts.Group, Identity: &empty, Secret: &empty})
		creds = adminclient.DockerHubCredentials{Identity: s.Identity, SecretSet: s.SecretSet}
	}
	if err != nil {
		return fmt.Errorf("clear the Docker Hub credentials of %s: %w", opts.hubCredsTarget, err)
	}
	return printCreds(opts.api, opts.hubCredsTarget, creds)
}

type hubCredsShowOptions struct {
	api
	hubCredsTarget
}

func newCmdHubCredsShow(f *cmdutil.Factory, runF func(context.Context, *hubCredsShowOptions) error) *cobra.Command {
	opts := &hubCredsShowOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "show {<group> | --default}",
		Short: "Show the Docker Hub identity of a group (never the secret)",
		Example: "  $ dproxy hub-creds show acme\n" +
			"  $ dproxy hub-creds show --default -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.args(cmd, args); err != nil {
				return err
			}
			return dispatch(cmd, opts, runF, runHubCredsShow)
		},
	}
	opts.bind(cmd)
	cmd.ValidArgsFunction = args(newCompleter(f).groups())
	return cmd
}

func runHubCredsShow(ctx context.Context, opts *hubCredsShowOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var creds adminclient.DockerHubCredentials
	if opts.Default {
		creds, err = c.InstanceDockerHubCredentials(ctx)
	} else {
		var g adminclient.Group
		g, err = c.Group(ctx, opts.Group)
		if g.Setting != nil {
			creds = adminclient.DockerHubCredentials{Identity: g.Setting.Identity, SecretSet: g.Setting.SecretSet}
		}
	}
	if err != nil {
		return fmt.Errorf("show the Docker Hub credentials of %s: %w", opts.hubCredsTarget, err)
	}
	return printCreds(opts.api, opts.hubCredsTarget, creds)
}

func printCreds(a api, t hubCredsTarget, creds adminclient.DockerHubCredentials) error {
	p, err := a.Printer()
	if err != nil {
		return err
	}
	identity := creds.Identity
	if identity == "" {
		identity = "(none)"
	}
	secret := "not set"
	if creds.SecretSet {
		secret = "set (never shown)"
	}
	return p.PrintFields(creds, []output.Field{
		{Name: "Credentials of", Value: t.String()},
		{Name: "Identity", Value: identity},
		{Name: "Secret", Value: secret},
	})
}
