package commands

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

// Build facts, set with -ldflags "-X .../commands.Version=… -X
// .../commands.Commit=… -X .../commands.BuildDate=…" (make build does);
// without them the commit and date come from the Go toolchain's VCS stamp.
var (
	Version   = "dev"
	Commit    = ""
	BuildDate = ""
)

// buildInfo is what `dproxy version` and `dproxy --version` print.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// currentBuild collects the build facts of this binary.
func currentBuild() buildInfo {
	b := buildInfo{Version: Version, Commit: Commit, BuildDate: BuildDate, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				if b.BuildDate == "" {
					b.BuildDate = s.Value
				}
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	return b
}

// versionText is the version in words, one fact a line.
func versionText(b buildInfo) string {
	unknown := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	commit := unknown(b.Commit)
	if b.Modified {
		commit += " (with uncommitted changes)"
	}
	return fmt.Sprintf("dproxy %s\ncommit:  %s\nbuilt:   %s\ngo:      %s %s\n", b.Version, commit, unknown(b.BuildDate), b.GoVersion, b.Platform)
}

type versionOptions struct {
	IO     *cmdutil.IOStreams
	Output string
	Build  buildInfo
}

func newCmdVersion(ios *cmdutil.IOStreams, runF func(context.Context, *versionOptions) error) *cobra.Command {
	opts := &versionOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the dproxy version, commit, build date and Go version",
		Long:  "Print the version, the commit it was built from, the build date and the Go version; `dproxy --version` prints the same.",
		Example: "  $ dproxy version\n" +
			"  $ dproxy version -o json",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Build = currentBuild()
			return dispatch(cmd, opts, runF, runVersion)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func runVersion(_ context.Context, opts *versionOptions) error {
	p, err := cmdutil.NewPrinter(opts.IO, opts.Output)
	if err != nil {
		return err
	}
	if p.JSON() {
		return p.PrintJSON(opts.Build)
	}
	_, err = fmt.Fprint(opts.IO.Out, versionText(opts.Build))
	return err
}

// outputFormats are the values of -o on every command that prints.
var outputFormats = []string{"table", "json"}

// addOutputFlag adds -o/--output (table or json) to a command that does
// not take the admin commands' connection flags.
func addOutputFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVarP(format, "output", "o", "", "output format: "+strings.Join(outputFormats, " or ")+" (default table)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
}
