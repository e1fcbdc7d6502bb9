package commands

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

// completionTimeout bounds the server requests of one shell completion:
// a slow or unreachable server gives no completions rather than a hang.
const completionTimeout = 2 * time.Second

// noFiles is the directive of every value completion: the values are not
// file names.
const noFiles = cobra.ShellCompDirectiveNoFileComp

// completer completes argument and flag values, some of them from the
// server. Every failure (no server, no token, no permission, a timeout)
// gives no completions and prints nothing: a shell completion never shows
// an error.
type completer struct {
	f       *cmdutil.Factory
	timeout time.Duration
}

func newCompleter(f *cmdutil.Factory) completer { return completer{f: f, timeout: completionTimeout} }

// valueFunc lists the candidate values of one argument or flag; args are
// the arguments before it. An error means no completions.
type valueFunc func(ctx context.Context, c *adminclient.Client, args []string) ([]string, error)

// from completes with values fetched from the server, filtered by what
// was typed so far.
func (k completer) from(values valueFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		conn, err := k.f.Connection()
		if err != nil || conn.Token == "" {
			return nil, noFiles
		}
		c, err := adminclient.New(conn.Server, conn.Token, adminclient.Options{HTTPClient: &http.Client{Timeout: k.timeout}})
		if err != nil {
			return nil, noFiles
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, k.timeout)
		defer cancel()
		vals, err := values(ctx, c, args)
		if err != nil {
			return nil, noFiles
		}
		return withPrefix(vals, toComplete), noFiles
	}
}

// args completes the n-th positional argument with fns[n] and nothing
// after the last.
func args(fns ...cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, a []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(a) >= len(fns) || fns[len(a)] == nil {
			return nil, noFiles
		}
		return fns[len(a)](cmd, a, toComplete)
	}
}

// fixed completes with a fixed list (roles, formats).
func fixed(vals ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return withPrefix(vals, toComplete), noFiles
	}
}

// commaList completes a comma-separated list (--scopes api,read_registry):
// the items not given yet, after those typed.
func commaList(vals ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		done, last := "", toComplete
		if i := strings.LastIndex(toComplete, ","); i >= 0 {
			done, last = toComplete[:i+1], toComplete[i+1:]
		}
		given := strings.Split(done, ",")
		var out []string
		for _, v := range vals {
			if strings.HasPrefix(v, last) && !slices.Contains(given, v) {
				out = append(out, done+v)
			}
		}
		return out, noFiles | cobra.ShellCompDirectiveNoSpace
	}
}

// withPrefix keeps the values (optionally "value\tdescription") that
// start with prefix.
func withPrefix(vals []string, prefix string) []string {
	var out []string
	for _, v := range vals {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// groups completes group paths the caller can read.
func (k completer) groups() cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, _ []string) ([]string, error) {
		gs, err := c.AllGroups(ctx, "")
		var out []string
		for _, g := range gs {
			out = append(out, g.FullPath)
		}
		return out, err
	})
}

// topGroups completes the top-level groups (those virtual registries
// belong to).
func (k completer) topGroups() cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, _ []string) ([]string, error) {
		gs, err := c.AllGroups(ctx, "")
		var out []string
		for _, g := range gs {
			if g.ParentPath == "" {
				out = append(out, g.FullPath)
			}
		}
		return out, err
	})
}

// users completes usernames (instance admins may list them).
func (k completer) users() cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, _ []string) ([]string, error) {
		us, err := c.AllUsers(ctx)
		var out []string
		for _, u := range us {
			out = append(out, u.Username)
		}
		return out, err
	})
}

// members completes the direct members of the group in args[0].
func (k completer) members() cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, args []string) ([]string, error) {
		ms, err := c.Members(ctx, args[0])
		var out []string
		for _, m := range ms {
			out = append(out, m.Username+"\t"+roleWord(m.Role))
		}
		return out, err
	})
}

// tokens completes the ids of the caller's own tokens.
func (k completer) tokens() cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, _ []string) ([]string, error) {
		ts, err := c.Tokens(ctx, adminclient.TokenFilter{})
		var out []string
		for _, t := range ts {
			if t.Active {
				out = append(out, t.ID+"\t"+t.Name)
			}
		}
		return out, err
	})
}

// images completes the cached images of the group in args[0] as
// image:tag or image@digest, as `cache delete` takes them.
func (k completer) images() cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, args []string) ([]string, error) {
		ms, err := adminclient.Collect(500, func(pg adminclient.Page) ([]adminclient.Manifest, adminclient.PageInfo, error) {
			r, err := c.Manifests(ctx, args[0], pg)
			return r.Manifests, r.PageInfo, err
		})
		var out []string
		for _, m := range ms {
			sep := ":"
			if strings.Contains(m.Reference, ":") {
				sep = "@" // a digest
			}
			out = append(out, m.Image+sep+m.Reference)
		}
		return out, err
	})
}

// registries lists the virtual registries of the top-level groups the
// caller can read.
func registries(ctx context.Context, c *adminclient.Client) ([]adminclient.VirtualRegistry, error) {
	gs, err := c.AllGroups(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []adminclient.VirtualRegistry
	for _, g := range gs {
		if g.ParentPath != "" {
			continue
		}
		rs, err := c.VirtualRegistries(ctx, g.FullPath)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// registryIDs completes virtual registry ids (the numbers commands take).
func (k completer) registryIDs() cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, _ []string) ([]string, error) {
		rs, err := registries(ctx, c)
		var out []string
		for _, r := range rs {
			out = append(out, shortID(r.ID)+"\t"+r.Name+" ("+r.GroupPath+")")
		}
		return out, err
	})
}

// upstreamIDs completes upstream ids: of every registry, or with
// ofRegistry of the registry in args[0].
func (k completer) upstreamIDs(ofRegistry bool) cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, args []string) ([]string, error) {
		var rs []adminclient.VirtualRegistry
		var err error
		if ofRegistry {
			var r adminclient.VirtualRegistry
			r, err = c.VirtualRegistry(ctx, args[0])
			rs = []adminclient.VirtualRegistry{r}
		} else {
			rs, err = registries(ctx, c)
		}
		var out []string
		for _, r := range rs {
			for _, u := range r.Upstreams {
				out = append(out, shortID(u.ID)+"\t"+u.Name+" of "+r.Name)
			}
		}
		return out, err
	})
}

// roleNames are the roles as the CLI takes them.
var roleNames = []string{"guest", "reporter", "developer", "maintainer", "owner"}

// complete registers a flag's value completion; a missing flag is a
// programming error caught by the completion test.
func complete(cmd *cobra.Command, flag string, fn cobra.CompletionFunc) {
	if err := cmd.RegisterFlagCompletionFunc(flag, fn); err != nil {
		panic(err)
	}
}

// tags completes the cached tags of the group in args[0] as image:tag, as
// `warm add` takes them.
func (k completer) tags() cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, args []string) ([]string, error) {
		ms, err := adminclient.Collect(500, func(pg adminclient.Page) ([]adminclient.Manifest, adminclient.PageInfo, error) {
			r, err := c.Manifests(ctx, args[0], pg)
			return r.Manifests, r.PageInfo, err
		})
		var out []string
		for _, m := range ms {
			if !strings.Contains(m.Reference, ":") && !slices.Contains(out, m.Image+":"+m.Reference) {
				out = append(out, m.Image+":"+m.Reference)
			}
		}
		return out, err
	})
}

// warmEntries completes the tags the group in args[0] keeps warm.
func (k completer) warmEntries() cobra.CompletionFunc {
	return k.from(func(ctx context.Context, c *adminclient.Client, args []string) ([]string, error) {
		l, err := c.WarmEntries(ctx, args[0])
		var out []string
		for _, e := range l.Entries {
			out = append(out, e.Ref())
		}
		return out, err
	})
}
