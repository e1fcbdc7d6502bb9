package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
	"github.com/dproxy/dproxy/internal/units"
	"github.com/dproxy/dproxy/internal/upstream"
)

// ExitBelowThreshold is the exit code of `ratelimit check --warn-below N`
// when fewer than N pulls remain.
const ExitBelowThreshold = 3

// dockerHubURL is the registry `ratelimit check --direct` asks by default.
const dockerHubURL = "https://registry-1.docker.io"

// hubSecretEnv holds the Docker Hub secret of `ratelimit check --direct
// --identity`, as an alternative to --secret-stdin.
const hubSecretEnv = "DPROXY_HUB_SECRET"

func newCmdRateLimit(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ratelimit <command>",
		Short: "See where Docker Hub's pull rate limit stands",
		Long: "Docker Hub limits manifest GETs per IP address or account. `ratelimit check` asks it how\n" +
			"many pulls are left, without spending one. See docs/rate-limits.md.",
		Example: "  $ dproxy ratelimit check --group acme\n" +
			"  $ dproxy ratelimit check --direct --warn-below 20",
	}
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(newCmdRateLimitCheck(f, nil))
	return cmd
}

type rateLimitCheckOptions struct {
	api
	Group       string
	Direct      bool
	Identity    string
	SecretStdin bool
	Upstream    string
	WarnBelow   int

	secret string // --direct with --identity: from stdin, $DPROXY_HUB_SECRET or the terminal
}

func newCmdRateLimitCheck(f *cmdutil.Factory, runF func(context.Context, *rateLimitCheckOptions) error) *cobra.Command {
	opts := &rateLimitCheckOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:   "check [--group G] [--direct [--identity NAME [--secret-stdin]] [--upstream URL]] [--warn-below N]",
		Short: "Check the upstream's pull rate limit",
		Long: "Ask the upstream how many pulls are left: a token for ratelimitpreview/test, then a HEAD of\n" +
			"its manifest, which Docker Hub does not count as a pull.\n\n" +
			"\"Credentials\" says whose limit it is, and whether the upstream verified them: an upstream that\n" +
			"answers without asking for credentials has not checked them, and its limit is not theirs.\n\n" +
			"By default the server checks, with the Docker Hub credentials a pull in --group would use (the\n" +
			"group's, else the instance default, else anonymous); the secret never leaves the server, and\n" +
			"the server always asks its own upstream. With --direct this machine asks, as a CI runner would:\n" +
			"anonymously, or as --identity with the secret from stdin (--secret-stdin) or $" + hubSecretEnv + ".\n\n" +
			"No rate-limit headers in the answer means no limit applies (\"unlimited\"). With --warn-below N the\n" +
			"command exits with status 3 when fewer than N pulls remain, so a CI job can gate on it.",
		Example: "  $ dproxy ratelimit check --group acme\n" +
			"  $ dproxy ratelimit check --direct\n" +
			"  $ printf %s \"$HUB_TOKEN\" | dproxy ratelimit check --direct --identity ourbot --secret-stdin\n" +
			"  $ dproxy ratelimit check --group acme --warn-below 50 -o json",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(cmd); err != nil {
				return err
			}
			if opts.Direct && opts.Identity != "" {
				secret, err := opts.readSecret()
				if err != nil {
					return err
				}
				opts.secret = secret
			}
			return dispatch(cmd, opts, runF, runRateLimitCheck)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Group, "group", "", "check with the Docker Hub credentials of this group (server side)")
	fl.BoolVar(&opts.Direct, "direct", false, "check from this machine instead of the server")
	fl.StringVar(&opts.Identity, "identity", "", "with --direct: the Docker Hub username (secret from stdin or $"+hubSecretEnv+")")
	fl.BoolVar(&opts.SecretStdin, "secret-stdin", false, "with --direct --identity: read the secret from stdin")
	fl.StringVar(&opts.Upstream, "upstream", dockerHubURL, "with --direct: the registry to ask")
	fl.IntVar(&opts.WarnBelow, "warn-below", 0, "exit with status 3 when fewer than this many pulls remain")
	complete(cmd, "group", newCompleter(f).groups())
	return cmd
}

// validate refuses flag combinations that would not do what they say.
func (o *rateLimitCheckOptions) validate(cmd *cobra.Command) error {
	changed := cmd.Flags().Changed
	usage := func(msg string) error { return &cmdutil.FlagError{Err: errors.New(msg)} }
	switch {
	case o.WarnBelow < 0:
		return usage(fmt.Sprintf("--warn-below must not be negative, got %d", o.WarnBelow))
	case o.Direct && o.Group != "":
		return usage("--group and --direct do not go together: a group's secret stays on the server; drop --direct to check with it, or pass --identity to check from here")
	case !o.Direct && (changed("identity") || o.SecretStdin || changed("upstream")):
		return usage("--identity, --secret-stdin and --upstream apply only with --direct (the server checks its own upstream with the group's stored credentials)")
	case o.SecretStdin && o.Identity == "":
		return usage("--secret-stdin needs --identity: the Docker Hub username the secret belongs to")
	}
	return nil
}

// readSecret returns the --direct secret: stdin with --secret-stdin, else
// $DPROXY_HUB_SECRET, else a prompt on a terminal.
func (o *rateLimitCheckOptions) readSecret() (string, error) {
	if !o.SecretStdin {
		if s := os.Getenv(hubSecretEnv); s != "" {
			return s, nil
		}
		if !o.IO.IsStdinTTY() {
			return "", &cmdutil.FlagError{Err: fmt.Errorf("the Docker Hub secret of %s is missing: pass it on stdin with --secret-stdin or set $%s", o.Identity, hubSecretEnv)}
		}
	}
	return o.IO.ReadSecret("Docker Hub secret for " + o.Identity)
}

func runRateLimitCheck(ctx context.Context, opts *rateLimitCheckOptions) error {
	var res adminclient.DockerHubRateLimit
	var err error
	if opts.Direct {
		res, err = checkDirect(ctx, opts.Upstream, upstream.Credentials{Username: opts.Identity, Password: opts.secret})
	} else {
		var c *adminclient.Client
		if c, err = opts.Client(); err != nil {
			return err
		}
		res, err = c.DockerHubRateLimit(ctx, opts.Group)
	}
	if err != nil {
		return fmt.Errorf("check the rate limit: %w", err)
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	if err := printRateLimit(p, res); err != nil {
		return err
	}
	if opts.WarnBelow > 0 && !res.Unlimited && res.Remaining != nil && *res.Remaining < opts.WarnBelow {
		return &cmdutil.ExitError{Code: ExitBelowThreshold,
			Err: fmt.Errorf("%d pulls remaining for %s, below --warn-below %d", *res.Remaining, res.AuthenticatedAs, opts.WarnBelow)}
	}
	return nil
}

// checkDirect asks the upstream at url from this machine.
func checkDirect(ctx context.Context, url string, creds upstream.Credentials) (adminclient.DockerHubRateLimit, error) {
	c, err := upstream.New(upstream.Options{URL: url, UserAgent: "dproxy-ratelimit-check"})
	if err != nil {
		return adminclient.DockerHubRateLimit{}, &cmdutil.FlagError{Err: fmt.Errorf("--upstream: %w", err)}
	}
	r, err := c.CheckRateLimit(ctx, creds)
	if err != nil {
		return adminclient.DockerHubRateLimit{}, err
	}
	out := adminclient.DockerHubRateLimit{
		Upstream: r.Upstream, Unlimited: r.Unlimited, AuthenticatedAs: r.Credential,
		CredentialSource: "ANONYMOUS", CheckedAt: r.CheckedAt.UTC(),
	}
	if creds.Username != "" {
		out.CredentialSource = "IDENTITY"
		out.CredentialVerified = r.CredentialVerified
	}
	if !r.Unlimited {
		limit, remaining := r.Limit, r.Remaining
		out.Limit, out.Remaining = &limit, &remaining
		if r.Window > 0 {
			w := int(r.Window / time.Second)
			out.WindowSeconds = &w
		}
		if r.Source != "" {
			src := r.Source
			out.Source = &src
		}
	}
	return out, nil
}

func printRateLimit(p *output.Printer, r adminclient.DockerHubRateLimit) error {
	limit, remaining, window, source := "unlimited", "unlimited", "-", "-"
	if !r.Unlimited {
		if r.Limit != nil {
			limit = strconv.Itoa(*r.Limit)
		}
		if r.Remaining != nil {
			remaining = strconv.Itoa(*r.Remaining)
		}
		if r.WindowSeconds != nil {
			window = units.Seconds(*r.WindowSeconds)
		}
	}
	if r.Source != nil {
		source = *r.Source
	}
	return p.PrintFields(r, []output.Field{
		{Name: "Upstream", Value: r.Upstream},
		{Name: "Limit", Value: limit},
		{Name: "Remaining", Value: remaining},
		{Name: "Window", Value: window},
		{Name: "Source", Value: source},
		{Name: "Authenticated as", Value: r.AuthenticatedAs},
		{Name: "Credentials", Value: credentialsText(r)},
		{Name: "Checked at", Value: p.Time(r.CheckedAt)},
	})
}

// credentialsText says which credentials were checked and whether the
// upstream verified them: one that asks for none has not, and the limit
// it reports is not theirs.
func credentialsText(r adminclient.DockerHubRateLimit) string {
	w := credentialSourceWord(r.CredentialSource)
	switch {
	case r.CredentialSource == "ANONYMOUS" || r.CredentialSource == "":
		return w
	case r.CredentialVerified:
		return w + ", accepted by the upstream"
	}
	return w + ", NOT verified: the upstream asked for no credentials, so the limit shown is not theirs"
}

func credentialSourceWord(s string) string {
	switch s {
	case "GROUP":
		return "the group's Docker Hub credentials"
	case "INSTANCE_DEFAULT":
		return "the instance default Docker Hub credentials"
	case "IDENTITY":
		return "--identity"
	}
	return "anonymous"
}
