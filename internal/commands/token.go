package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
)

func newCmdToken(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token <command>",
		Short: "Manage personal, group access and deploy tokens",
		Long: "Tokens are stored only as hashes: the secret is printed once, when the token is created.\n" +
			"Scopes: " + strings.Join(adminclient.Scopes, ", ") + ".",
		Example: "  $ dproxy token create --scopes api\n" +
			"  $ dproxy token create --group acme --deploy --scopes read_registry\n" +
			"  $ dproxy token list --group acme\n" +
			"  $ dproxy token revoke gid://dproxy/AccessToken/7",
	}
	addConnectionFlags(cmd, f, true)
	cmd.AddCommand(newCmdTokenCreate(f, nil), newCmdTokenList(f, nil), newCmdTokenRevoke(f, nil))
	return cmd
}

type tokenCreateOptions struct {
	api
	Input adminclient.TokenInput
}

func newCmdTokenCreate(f *cmdutil.Factory, runF func(context.Context, *tokenCreateOptions) error) *cobra.Command {
	opts := &tokenCreateOptions{api: newAPI(f)}
	var (
		scopes          []string
		group, user     string
		role, expiresAt string
		deploy          bool
	)
	cmd := &cobra.Command{
		Use:   "create --scopes SCOPE[,SCOPE] [--group G [--deploy] | --user U] [--expires-at DATE]",
		Short: "Create a token and print its secret once",
		Long: "Create a personal token (yours, or --user's as an instance admin), a group access token\n" +
			"(--group, owner; acts with --role, default guest) or a group deploy token (--group --deploy).\n" +
			"On a terminal the details are printed; piped, only the secret is printed.",
		Example: "  $ dproxy token create --scopes api --name laptop\n" +
			"  $ dproxy token create --user alice --scopes read_registry --expires-at 2027-01-31\n" +
			"  $ dproxy token create --group acme --deploy --scopes read_registry --name ci",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			in := &opts.Input
			in.Kind = adminclient.TokenPersonal
			switch {
			case group != "" && user != "":
				return &cmdutil.FlagError{Err: errors.New("give --group or --user, not both")}
			case deploy && group == "":
				return &cmdutil.FlagError{Err: errors.New("--deploy needs --group: deploy tokens belong to a group")}
			case role != "" && (group == "" || deploy):
				return &cmdutil.FlagError{Err: errors.New("--role applies to group access tokens only (--group without --deploy)")}
			case deploy:
				in.Kind = adminclient.TokenDeploy
			case group != "":
				in.Kind = adminclient.TokenGroupAccess
			}
			in.GroupPath, in.Username = group, user
			if len(scopes) == 0 {
				return requiredFlag(cmd, "scopes", "one or more of "+strings.Join(adminclient.Scopes, ", "))
			}
			for _, s := range scopes {
				if !slices.Contains(adminclient.Scopes, s) {
					return &cmdutil.FlagError{Err: fmt.Errorf("unknown scope %q: want one or more of %s", s, strings.Join(adminclient.Scopes, ", "))}
				}
			}
			in.Scopes = scopes
			if role != "" {
				r, err := adminclient.ParseRole(role)
				if err != nil {
					return &cmdutil.FlagError{Err: err}
				}
				in.Role = r
			}
			if expiresAt != "" {
				t, err := parseDate(expiresAt)
				if err != nil {
					return &cmdutil.FlagError{Err: err}
				}
				in.ExpiresAt = &t
			}
			if in.Name == "" {
				in.Name = "dproxy-cli"
			}
			return dispatch(cmd, opts, runF, runTokenCreate)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&scopes, "scopes", nil, "comma-separated scopes (required): "+strings.Join(adminclient.Scopes, ", "))
	fl.StringVar(&opts.Input.Name, "name", "", "a name to recognise the token by (default dproxy-cli)")
	fl.StringVar(&group, "group", "", "create a group access (or, with --deploy, deploy) token of this group")
	fl.StringVar(&user, "user", "", "create a personal token of this user (instance admin)")
	fl.BoolVar(&deploy, "deploy", false, "create a deploy token (username + token, for CI)")
	fl.StringVar(&role, "role", "", "role of a group access token (default guest)")
	fl.StringVar(&opts.Input.DeployUsername, "deploy-username", "", "username of a deploy token (default: generated)")
	fl.StringVar(&expiresAt, "expires-at", "", "expiry date (2027-01-31) or time (RFC 3339); default: never")
	k := newCompleter(f)
	complete(cmd, "scopes", commaList(adminclient.Scopes...))
	complete(cmd, "group", k.groups())
	complete(cmd, "user", k.users())
	complete(cmd, "role", fixed(roleNames...))
	complete(cmd, "deploy-username", cobra.NoFileCompletions)
	complete(cmd, "name", cobra.NoFileCompletions)
	complete(cmd, "expires-at", cobra.NoFileCompletions)
	return cmd
}

// parseDate accepts a date (midnight UTC) or an RFC 3339 time in the future.
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return time.Time{}, fmt.Errorf("invalid --expires-at %q: want a date like 2027-01-31 or a time like 2027-01-31T12:00:00Z", s)
		}
	}
	if !t.After(time.Now()) {
		return time.Time{}, fmt.Errorf("invalid --expires-at %q: it is in the past", s)
	}
	return t.UTC(), nil
}

func runTokenCreate(ctx context.Context, opts *tokenCreateOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	tok, err := c.CreateToken(ctx, opts.Input)
	if err != nil {
		return fmt.Errorf("create %s token: %w", strings.ToLower(strings.ReplaceAll(string(opts.Input.Kind), "_", " ")), err)
	}
	if p.JSON() {
		return p.PrintJSON(tok)
	}
	if !p.TTY {
		_, err = fmt.Fprintln(opts.IO.Out, tok.Secret)
		return err
	}
	fields := []output.Field{
		{Name: "Token", Value: tok.Token.ID},
		{Name: "Kind", Value: string(tok.Token.Kind)},
		{Name: "Name", Value: tok.Token.Name},
		{Name: "Scopes", Value: strings.Join(tok.Token.Scopes, ",")},
	}
	if tok.Token.DeployUsername != "" {
		fields = append(fields, output.Field{Name: "Username", Value: tok.Token.DeployUsername})
	}
	fields = append(fields, output.Field{Name: "Secret", Value: tok.Secret})
	if err := p.PrintFields(tok, fields); err != nil {
		return err
	}
	_, err = fmt.Fprintln(opts.IO.ErrOut, "Copy the secret now: it is not shown again.")
	return err
}

type tokenListOptions struct {
	api
	Filter adminclient.TokenFilter
}

func newCmdTokenList(f *cmdutil.Factory, runF func(context.Context, *tokenListOptions) error) *cobra.Command {
	opts := &tokenListOptions{api: newAPI(f)}
	cmd := &cobra.Command{
		Use:     "list [--group G | --user U]",
		Aliases: []string{"ls"},
		Short:   "List tokens without their secrets",
		Long:    "List your personal tokens, a user's (--user) or a group's access and deploy tokens (--group).",
		Example: "  $ dproxy token list\n" +
			"  $ dproxy token list --group acme -o json",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Filter.GroupPath != "" && opts.Filter.Username != "" {
				return &cmdutil.FlagError{Err: errors.New("give --group or --user, not both")}
			}
			return dispatch(cmd, opts, runF, runTokenList)
		},
	}
	cmd.Flags().StringVar(&opts.Filter.GroupPath, "group", "", "list this group's access and deploy tokens")
	cmd.Flags().StringVar(&opts.Filter.Username, "user", "", "list this user's personal tokens")
	complete(cmd, "group", newCompleter(f).groups())
	complete(cmd, "user", newCompleter(f).users())
	return cmd
}

func runTokenList(ctx context.Context, opts *tokenListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	toks, err := c.Tokens(ctx, opts.Filter)
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	t := output.Table{Header: []string{"ID", "KIND", "NAME", "OWNER", "SCOPES", "STATE", "EXPIRES", "LAST USED"}}
	for _, tk := range toks {
		owner := tk.Username
		if tk.GroupPath != "" {
			owner = tk.GroupPath
			if tk.DeployUsername != "" {
				owner += " (" + tk.DeployUsername + ")"
			}
		}
		state := "active"
		switch {
		case tk.RevokedAt != nil:
			state = "revoked"
		case !tk.Active:
			state = "expired"
		}
		t.Rows = append(t.Rows, []string{tk.ID, string(tk.Kind), tk.Name, owner, strings.Join(tk.Scopes, ","), state, optTime(p, tk.ExpiresAt), optTime(p, tk.LastUsedAt)})
	}
	if toks == nil {
		toks = []adminclient.Token{}
	}
	return p.Print(toks, t)
}

func optTime(p *output.Printer, t *time.Time) string {
	if t == nil {
		return p.Time(time.Time{})
	}
	return p.Time(*t)
}

type tokenRevokeOptions struct {
	api
	ID string
}

func newCmdTokenRevoke(f *cmdutil.Factory, runF func(context.Context, *tokenRevokeOptions) error) *cobra.Command {
	opts := &tokenRevokeOptions{api: newAPI(f)}
	return &cobra.Command{
		Use:               "revoke <id>",
		Short:             "Revoke a token",
		Long:              "Revoke a token by the id `dproxy token list` shows (its owner, an owner of its group, or an instance admin).",
		Example:           "  $ dproxy token revoke gid://dproxy/AccessToken/7",
		Args:              exactArgs(1, "a token id"),
		ValidArgsFunction: newCompleter(f).tokens(),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			return dispatch(cmd, opts, runF, runTokenRevoke)
		},
	}
}

func runTokenRevoke(ctx context.Context, opts *tokenRevokeOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	p, err := opts.Printer()
	if err != nil {
		return err
	}
	r, err := c.RevokeToken(ctx, opts.ID)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", opts.ID, err)
	}
	line := fmt.Sprintf("Revoked token %s (%s)", r.Token.ID, r.Token.Name)
	if r.AlreadyRevoked {
		line = fmt.Sprintf("Token %s (%s) was already revoked", r.Token.ID, r.Token.Name)
		if r.Token.RevokedAt != nil {
			line += ", " + r.Token.RevokedAt.UTC().Format(time.RFC3339)
		}
		line += "; nothing changed"
	}
	return p.Message(r, line)
}
