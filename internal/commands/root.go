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
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

// Version is set at build time with -ldflags "-X .../commands.Version=…".
var Version = "dev"

// Main runs the command line and returns the process exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cmdutil.System(), os.Args[1:])
}

// run runs the command line args and returns the exit code; an error is
// reported as one line on ios.ErrOut.
func run(ctx context.Context, ios *cmdutil.IOStreams, args []string) int {
	root := NewRootCmd(ios)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return cmdutil.ExitOK
	}
	fmt.Fprintln(ios.ErrOut, "dproxy: "+message(err))
	return cmdutil.ExitCode(err)
}

// message is the one line printed for a failed command. Connection and
// sign-in failures are the same whatever the command was doing, so they
// are printed without the action's prefix.
func message(err error) string {
	var unreachable *adminclient.UnreachableError
	if errors.As(err, &unreachable) {
		return unreachable.Error()
	}
	var unauthorized *adminclient.UnauthorizedError
	if errors.As(err, &unauthorized) {
		return unauthorized.Error()
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// NewRootCmd builds the command tree.
func NewRootCmd(ios *cmdutil.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "dproxy <command>",
		Short: "A pull-through cache for container images",
		Long: "dproxy is a self-hosted dependency proxy for container images: a pull-through cache\n" +
			"between CI runners and Docker Hub (or any OCI registry).\n\n" +
			"`dproxy serve` runs the proxy; the other commands administer a running server.",
		Example: "  $ dproxy serve --data-dir /var/lib/dproxy\n" +
			"  $ dproxy group create acme && dproxy group enable acme\n" +
			"  $ docker pull 127.0.0.1:5000/acme/dependency_proxy/containers/alpine:latest",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetFlagErrorFunc(usageError)
	root.CompletionOptions.DisableDefaultCmd = true
	f := cmdutil.NewFactory(ios)
	root.AddCommand(
		newCmdServe(ios, nil), newCmdVersion(ios),
		newCmdLogin(f, nil), newCmdLogout(f, nil),
		newCmdGroup(f), newCmdHubCreds(f), newCmdTTLPolicy(f), newCmdCache(f),
		newCmdUser(f), newCmdMember(f), newCmdToken(f), newCmdCIEnv(f, nil), newCmdRateLimit(f), newCmdTUI(f, nil), newCmdVirtualRegistry(f),
		newCmdFsck(ios, nil), newCmdBackup(ios),
		newCmdCompletion(ios),
	)
	return root
}

// usageError makes err a usage error (exit 2) whose one line points at
// the command's help.
func usageError(cmd *cobra.Command, err error) error {
	return &cmdutil.FlagError{Err: fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())}
}

// noArgs refuses positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return usageError(cmd, fmt.Errorf("unknown command %q for %s", args[0], cmd.CommandPath()))
	}
	return usageError(cmd, fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0]))
}

func newCmdVersion(ios *cmdutil.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the dproxy version",
		Args:    noArgs,
		Example: "  $ dproxy version",
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(ios.Out, "dproxy %s\n", Version)
			return err
		},
	}
}
