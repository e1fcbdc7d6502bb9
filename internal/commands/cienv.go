package commands

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
)

type ciEnvOptions struct {
	api
	Group       string
	Format      string
	CreateToken bool
}

func newCmdCIEnv(f *cmdutil.Factory, runF func(context.Context, *ciEnvOptions) error) *cobra.Command {
	opts := &ciEnvOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "ci-env <group> [--format dotenv|shell|json] [--create-deploy-token]",
		Short: "Print GitLab's CI_DEPENDENCY_PROXY_* variables for a group",
		Long: "Print the variables GitLab CI sets for its dependency proxy, pointing at this dproxy:\n" +
			"CI_DEPENDENCY_PROXY_SERVER (host:port), CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX (the top-level\n" +
			"group), CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX (the group itself) and\n" +
			"CI_DEPENDENCY_PROXY_USER. With --create-deploy-token a read_registry deploy token of the group\n" +
			"is created and CI_DEPENDENCY_PROXY_USER/CI_DEPENDENCY_PROXY_PASSWORD are its credentials.",
		Example: "  $ dproxy ci-env acme\n" +
			"  $ eval \"$(dproxy ci-env acme/ci --format shell --create-deploy-token)\"\n" +
			"  $ dproxy ci-env acme --format json",
		Args: exactArgs(1, "a group path"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Group = args[0]
			switch opts.Format {
			case "dotenv", "shell", "json":
			default:
				return &cmdutil.FlagError{Err: fmt.Errorf("unknown --format %q: want dotenv, shell or json", opts.Format)}
			}
			return dispatch(cmd, opts, runF, runCIEnv)
		},
	}
	addConnectionFlags(cmd, f)
	cmd.Flags().StringVar(&opts.Format, "format", "dotenv", "dotenv (KEY=value), shell (export KEY='value') or json")
	cmd.Flags().BoolVar(&opts.CreateToken, "create-deploy-token", false, "create a deploy token of the group and print its credentials")
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
	scheme := "http"
	if u, err := url.Parse(c.Server()); err == nil {
		scheme = u.Scheme
	}
	// GitLab CI's group prefix is the top-level group's; the group's own
	// prefix is the direct one.
	top, _, _ := strings.Cut(g.FullPath, "/")
	server, prefix := withPort(strings.Replace(g.ImagePrefix, "/"+g.FullPath+"/", "/"+top+"/", 1), scheme)
	_, direct := withPort(g.ImagePrefix, scheme)
	vars := [][2]string{
		{"CI_DEPENDENCY_PROXY_SERVER", server},
		{"CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX", prefix},
		{"CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX", direct},
	}
	if opts.CreateToken {
		tok, err := c.CreateToken(ctx, adminclient.TokenInput{
			Kind: adminclient.TokenDeploy, Name: "ci-env", GroupPath: g.FullPath, Scopes: []string{"read_registry"},
		})
		if err != nil {
			return fmt.Errorf("create a deploy token of %s: %w", g.FullPath, err)
		}
		vars = append(vars, [2]string{"CI_DEPENDENCY_PROXY_USER", tok.Token.DeployUsername}, [2]string{"CI_DEPENDENCY_PROXY_PASSWORD", tok.Secret})
	} else {
		me, err := c.CurrentUser(ctx)
		if err != nil {
			return err
		}
		vars = append(vars, [2]string{"CI_DEPENDENCY_PROXY_USER", me.Username})
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

func writeEnv(ios *cmdutil.IOStreams, format string, vars [][2]string) error {
	if format == "json" {
		m := make(map[string]string, len(vars))
		for _, kv := range vars {
			m[kv[0]] = kv[1]
		}
		return (&output.Printer{Out: ios.Out, Format: output.FormatJSON}).PrintJSON(m)
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
