package commands

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
)

type ciEnvOptions struct {
	api
	Group       string
	Format      string // dotenv, shell, dockerconfig, table or json
	CreateToken bool
	// OIDC and GitHub print a GitLab CI or a GitHub Actions snippet that
	// signs in with the job's ID token instead of variables.
	OIDC, GitHub bool
}

// ciEnvFormats are the values of ci-env's -o; dotenv is the default.
var ciEnvFormats = []string{"dotenv", "shell", "dockerconfig", "table", "json"}

func newCmdCIEnv(f *cmdutil.Factory, runF func(context.Context, *ciEnvOptions) error) *cobra.Command {
	opts := &ciEnvOptions{api: newAPI(f)}
	var format string
	cmd := &cobra.Command{
		Use:   "ci-env <group> [-o dotenv|shell|dockerconfig|table|json] [--create-deploy-token] [--oidc | --github]",
		Short: "Print GitLab's CI_DEPENDENCY_PROXY_* variables for a group",
		Long: "Print the variables GitLab CI sets for its dependency proxy, pointing at this dproxy:\n" +
			"CI_DEPENDENCY_PROXY_SERVER (host:port), CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX (the top-level\n" +
			"group), CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX (the group itself) and\n" +
			"CI_DEPENDENCY_PROXY_USER. With --create-deploy-token a read_registry deploy token of the group\n" +
			"is created and CI_DEPENDENCY_PROXY_USER/CI_DEPENDENCY_PROXY_PASSWORD are its credentials.\n\n" +
			"-o picks the form: dotenv (KEY=value, the default), shell (export KEY='value'), table, json, or\n" +
			"dockerconfig: a Docker config.json with the deploy token's credentials for the server (for\n" +
			"GitLab's DOCKER_AUTH_CONFIG; needs --create-deploy-token).\n\n" +
			"--oidc prints a .gitlab-ci.yml snippet and --github a GitHub Actions one that sign in with the\n" +
			"job's OpenID Connect ID token (audience: the server's external URL) instead of a stored secret;\n" +
			"dproxy must trust the CI system's tokens first (dproxy ci-trust add). Ports come from the\n" +
			"server's external URL.",
		Example: "  $ dproxy ci-env acme\n" +
			"  $ eval \"$(dproxy ci-env acme/ci -o shell --create-deploy-token)\"\n" +
			"  $ dproxy ci-env acme/ci -o dockerconfig --create-deploy-token > ~/.docker/config.json\n" +
			"  $ dproxy ci-env acme -o json\n" +
			"  $ dproxy ci-env acme --oidc\n" +
			"  $ dproxy ci-env acme --github",
		Args:              exactArgs(1, "a group path"),
		ValidArgsFunction: newCompleter(f).groups(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			opts.Format = f.Flags.Output
			if cmd.Flags().Changed("format") {
				if cmd.Flags().Changed("output") && format != opts.Format {
					return &cmdutil.FlagError{Err: fmt.Errorf("-o %s and --format %s disagree: give -o alone (--format is its old name)", opts.Format, format)}
				}
				opts.Format = format
			}
			if opts.Format == "" {
				opts.Format = "dotenv"
			}
			opts.Format = strings.ToLower(opts.Format)
			if !slices.Contains(ciEnvFormats, opts.Format) {
				return &cmdutil.FlagError{Err: fmt.Errorf("-o: unknown format %q for ci-env: want %s", opts.Format, strings.Join(ciEnvFormats, ", "))}
			}
			if opts.OIDC && opts.GitHub {
				return &cmdutil.FlagError{Err: errors.New("give --oidc (GitLab CI) or --github (GitHub Actions), not both")}
			}
			if (opts.OIDC || opts.GitHub) && (opts.CreateToken || cmd.Flags().Changed("output") || cmd.Flags().Changed("format")) {
				return &cmdutil.FlagError{Err: errors.New("--oidc and --github print a CI configuration snippet: they take no -o and need no --create-deploy-token")}
			}
			if opts.Format == "dockerconfig" && !opts.CreateToken {
				return &cmdutil.FlagError{Err: errors.New("-o dockerconfig holds a password: add --create-deploy-token to create a deploy token for it")}
			}
			return dispatch(cmd, opts, runF, runCIEnv)
		},
	}
	addConnectionFlags(cmd, f, false)
	cmd.Flags().StringVarP(&f.Flags.Output, "output", "o", "", "output format: "+strings.Join(ciEnvFormats, ", ")+" (default dotenv)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(ciEnvFormats, cobra.ShellCompDirectiveNoFileComp))
	oldName(cmd, "format", "-o", func() { cmd.Flags().StringVar(&format, "format", "", "") })
	cmd.Flags().BoolVar(&opts.CreateToken, "create-deploy-token", false, "create a deploy token of the group and print its credentials")
	cmd.Flags().BoolVar(&opts.OIDC, "oidc", false, "print a .gitlab-ci.yml snippet that pulls with the job's ID token (see dproxy ci-trust)")
	cmd.Flags().BoolVar(&opts.GitHub, "github", false, "print a GitHub Actions snippet that pulls with the job's ID token (see dproxy ci-trust)")
	return cmd
}

func runCIEnv(ctx context.Context, opts *ciEnvOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	g, err := c.Group(ctx, opts.Group)
	if err != nil {
		return err
	}
	// The port a client uses is the external URL's (the server may be
	// reached here another way, e.g. plain HTTP behind a TLS proxy).
	external, err := c.ExternalURL(ctx)
	if err != nil || external == "" {
		external = c.Server()
	}
	scheme := "http"
	if u, err := url.Parse(external); err == nil && u.Scheme != "" {
		scheme = u.Scheme
	}
	// GitLab CI's group prefix is the top-level group's; the group's own
	// prefix is the direct one.
	top, _, _ := strings.Cut(g.FullPath, "/")
	server, prefix := withPort(strings.Replace(g.ImagePrefix, "/"+g.FullPath+"/", "/"+top+"/", 1), scheme)
	_, direct := withPort(g.ImagePrefix, scheme)
	if opts.OIDC || opts.GitHub {
		sn := ciSnippet{Audience: strings.TrimSuffix(external, "/"), Server: server, Prefix: direct, Group: g.FullPath}
		if opts.GitHub {
			return writeGitHubOIDC(opts.IO.Out, sn)
		}
		return writeGitLabOIDC(opts.IO.Out, sn)
	}
	vars := [][2]string{
		{"CI_DEPENDENCY_PROXY_SERVER", server},
		{"CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX", prefix},
		{"CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX", direct},
	}
	var user, password string
	if opts.CreateToken {
		tok, err := c.CreateToken(ctx, adminclient.TokenInput{
			Kind: adminclient.TokenDeploy, Name: "ci-env", GroupPath: g.FullPath, Scopes: []string{"read_registry"},
		})
		if err != nil {
			return fmt.Errorf("create a deploy token of %s: %w", g.FullPath, err)
		}
		user, password = tok.Token.DeployUsername, tok.Secret
		vars = append(vars, [2]string{"CI_DEPENDENCY_PROXY_USER", user}, [2]string{"CI_DEPENDENCY_PROXY_PASSWORD", password})
	} else {
		me, err := c.CurrentUser(ctx)
		if err != nil {
			return err
		}
		vars = append(vars, [2]string{"CI_DEPENDENCY_PROXY_USER", me.Username})
	}
	if opts.Format == "dockerconfig" {
		return writeDockerConfig(opts.IO, server, user, password)
	}
	return writeEnv(opts.IO, opts.Format, vars)
}

// withPort splits an image prefix "host[:port]/path" and returns the
// server with its port (the scheme's default when the prefix has none)
// and the prefix with that server, as GitLab prints them.
func withPort(prefix, scheme string) (server, full string) {
	host, rest, _ := strings.Cut(prefix, "/")
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := "80"
		if scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	if rest == "" {
		return host, host
	}
	return host, host + "/" + rest
}

// writeEnv prints the variables in format: dotenv, shell, table or json.
func writeEnv(ios *cmdutil.IOStreams, format string, vars [][2]string) error {
	p := &output.Printer{Out: ios.Out, TTY: ios.IsStdoutTTY(), Format: output.FormatTable}
	switch format {
	case "json":
		m := make(map[string]string, len(vars))
		for _, kv := range vars {
			m[kv[0]] = kv[1]
		}
		return p.PrintJSON(m)
	case "table":
		t := output.Table{Header: []string{"VARIABLE", "VALUE"}}
		for _, kv := range vars {
			t.Rows = append(t.Rows, []string{kv[0], kv[1]})
		}
		return p.PrintTable(t)
	}
	for _, kv := range vars {
		line := kv[0] + "=" + kv[1]
		if format == "shell" {
			line = "export " + kv[0] + "='" + strings.ReplaceAll(kv[1], "'", `'\''`) + "'"
		}
		if _, err := fmt.Fprintln(ios.Out, line); err != nil {
			return err
		}
	}
	return nil
}

// dockerConfig is a Docker client's config.json holding credentials.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Auth string `json:"auth"` // base64 of user:password
}

// writeDockerConfig prints a config.json with user and password for server
// (host:port), as GitLab's DOCKER_AUTH_CONFIG takes it.
func writeDockerConfig(ios *cmdutil.IOStreams, server, user, password string) error {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := dockerConfig{Auths: map[string]dockerAuth{server: {Auth: auth}}}
	return (&output.Printer{Out: ios.Out, Format: output.FormatJSON}).PrintJSON(cfg)
}
