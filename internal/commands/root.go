// Package commands is dproxy's cobra command tree: `serve` and the admin
// and operations CLI. Commands gather input into options and hand them to
// run functions; nothing below imports this package.
package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

// Main runs the command line and returns the process exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cmdutil.System(), os.Args[1:])
}

// run runs the command line args and returns the exit code; an error is
// reported on ios.ErrOut, one "dproxy: " line per problem.
func run(ctx context.Context, ios *cmdutil.IOStreams, args []string) int {
	root := NewRootCmd(ios)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return cmdutil.ExitOK
	}
	for _, line := range messageLines(err) {
		fmt.Fprintln(ios.ErrOut, "dproxy: "+line)
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return cmdutil.ExitInterrupted
	}
	return cmdutil.ExitCode(err)
}

// messageLines are the lines printed for a failed command: one per
// problem (a configuration with two mistakes gives two lines). Connection
// and sign-in failures are the same whatever the command was doing, so
// they are printed without the action's prefix.
func messageLines(err error) []string {
	var (
		unreachable  *adminclient.UnreachableError
		unauthorized *adminclient.UnauthorizedError
		scheme       *adminclient.SchemeError
		noToken      *cmdutil.NoTokenError
	)
	switch {
	case errors.As(err, &unreachable):
		err = unreachable
	case errors.As(err, &unauthorized):
		err = unauthorized
	case errors.As(err, &scheme):
		err = scheme
	case errors.As(err, &noToken):
		err = noToken
	}
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// NewRootCmd builds the command tree.
func NewRootCmd(ios *cmdutil.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "dproxy <command>",
		Short: "A pull-through cache for container images",
		Long: "dproxy is a self-hosted dependency proxy for container images: a pull-through cache\n" +
			"between CI runners and Docker Hub (or any OCI registry).\n\n" +
			"`dproxy serve` runs the proxy; the other commands administer a running server.\n" +
			"Output formats, exit codes and shell completion: docs/cli/README.md.",
		Example: "  $ dproxy serve --data-dir /var/lib/dproxy\n" +
			"  $ dproxy group create acme\n" +
			"  $ docker pull 127.0.0.1:5000/acme/dependency_proxy/containers/alpine:latest",
		Args:          noArgs,
		RunE:          nounHelp,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetFlagErrorFunc(usageError)
	root.Flags().BoolP("version", "v", false, "print the version, commit, build date and Go version")
	root.SetVersionTemplate(versionText(currentBuild()))
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetHelpCommand(newCmdHelp())
	f := cmdutil.NewFactory(ios)
	root.AddCommand(
		newCmdServe(ios, nil), newCmdVersion(ios, nil),
		newCmdLogin(f, nil), newCmdLogout(f, nil),
		newCmdGroup(f), newCmdHubCreds(f), newCmdTTLPolicy(f), newCmdCache(f),
		newCmdUser(f), newCmdMember(f), newCmdToken(f), newCmdCIEnv(f, nil), newCmdCITrust(f), newCmdRateLimit(f), newCmdTUI(f, nil), newCmdVirtualRegistry(f),
		newCmdWarm(f),
		newCmdFsck(ios, nil), newCmdBackup(ios), newCmdKeys(ios),
		newCmdCompletion(ios),
	)
	noFileArgs(root)
	return root
}

// noFileArgs makes the shell offer no file names for the arguments of
// commands that complete none of their own: only `backup restore` and
// `backup verify` take a file.
func noFileArgs(cmd *cobra.Command) {
	if cmd.ValidArgsFunction == nil && len(cmd.ValidArgs) == 0 && cmd.CommandPath() != "dproxy backup restore" && cmd.CommandPath() != "dproxy backup verify" {
		cmd.ValidArgsFunction = cobra.NoFileCompletions
	}
	for _, c := range cmd.Commands() {
		noFileArgs(c)
	}
}

// newCmdHelp is `dproxy help [command]`: an unknown command is a usage
// error with suggestions, as it is without `help`.
func newCmdHelp() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Help shows the help of any command: `dproxy help group create` is `dproxy group create --help`.",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, sub.Name()+"\t"+sub.Short)
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil {
				return &cmdutil.FlagError{Err: err}
			}
			if len(rest) > 0 {
				return unknownCommand(cmd, rest[0])
			}
			return cmd.Help()
		},
	}
}

// usageError makes err a usage error (exit 2) whose line points at the
// command's help, and suggests the flag meant when err is an unknown flag.
func usageError(cmd *cobra.Command, err error) error {
	hint := ""
	if name, ok := strings.CutPrefix(err.Error(), "unknown flag: --"); ok {
		var names []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden {
				names = append(names, f.Name)
			}
		})
		if s := closest(name, names); len(s) > 0 {
			hint = "; did you mean --" + strings.Join(s, " or --") + "?"
		}
	}
	return &cmdutil.FlagError{Err: fmt.Errorf("%w%s (see '%s --help')", err, hint, cmd.CommandPath())}
}

// unknownCommand is the usage error of an unknown subcommand of cmd, with
// the subcommands that may have been meant.
func unknownCommand(cmd *cobra.Command, name string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
			names = append(names, c.Aliases...)
		}
	}
	hint := ""
	if s := closest(name, names); len(s) > 0 {
		for i := range s {
			if c, _, err := cmd.Find([]string{s[i]}); err == nil {
				s[i] = c.Name() // an alias suggests its command
			}
		}
		s = dedupe(s)
		for i := range s {
			s[i] = strconv.Quote(s[i])
		}
		hint = "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &cmdutil.FlagError{Err: fmt.Errorf("unknown command %q for %q%s (see '%s --help')", name, cmd.CommandPath(), hint, cmd.CommandPath())}
}

// noArgs refuses positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return unknownCommand(cmd, args[0])
	}
	return usageError(cmd, fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0]))
}

// nounHelp runs a noun without a verb: it prints the help, or refuses an
// unknown verb as a usage error.
func nounHelp(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return unknownCommand(cmd, args[0])
	}
	return cmd.Help()
}

// requiredFlag is the usage error of a required flag that was not given;
// what says what to give.
func requiredFlag(cmd *cobra.Command, name, what string) error {
	return &cmdutil.FlagError{Err: fmt.Errorf("required flag --%s is missing: %s (see '%s --help')", name, what, cmd.CommandPath())}
}

// closest returns the candidates a typo of typed may stand for: those
// within two edits, or that start with it.
func closest(typed string, candidates []string) []string {
	var out []string
	typed = strings.ToLower(typed)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if typed != "" && (strings.HasPrefix(lc, typed) || levenshtein(typed, lc) <= 2) {
			out = append(out, c)
		}
	}
	return out
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// levenshtein is the edit distance between a and b.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}
