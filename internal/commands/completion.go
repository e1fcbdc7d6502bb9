package commands

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

func newCmdCompletion(ios *cmdutil.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "completion {bash|zsh|fish|powershell}",
		Short: "Print a shell completion script",
		Long: "Print the completion script of a shell. Load it in the current shell, or install it\n" +
			"where your shell looks for completions (the repository's completions/ folder has them too).\n\n" +
			"It completes commands, flags and their values: group paths, usernames, roles, scopes,\n" +
			"virtual-registry and upstream ids, cached images and -o formats, those of the server asked\n" +
			"from it (with the connection the command would use) and given up after 2 seconds.\n\n" +
			"The bash script needs the bash-completion package (version 2): without it bash says\n" +
			"`_get_comp_words_by_ref: command not found`. Install it with `apt-get install bash-completion`\n" +
			"(Debian, Ubuntu), `dnf install bash-completion` (Fedora) or `brew install bash-completion@2`\n" +
			"(macOS), and start a new shell. zsh, fish and PowerShell need nothing else.",
		Example: "  $ source <(dproxy completion bash)\n" +
			"  $ dproxy completion zsh > \"${fpath[1]}/_dproxy\"\n" +
			"  $ dproxy completion fish > ~/.config/fish/completions/dproxy.fish\n" +
			"  $ dproxy completion powershell | Out-String | Invoke-Expression",
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args:      exactArgs(1, "a shell: bash, zsh, fish or powershell"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeCompletion(cmd.Root(), args[0], ios)
		},
	}
}

// writeCompletion writes the completion script of shell for root.
func writeCompletion(root *cobra.Command, shell string, ios *cmdutil.IOStreams) error {
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(ios.Out, true)
	case "zsh":
		return root.GenZshCompletion(ios.Out)
	case "fish":
		return root.GenFishCompletion(ios.Out, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(ios.Out)
	}
	return &cmdutil.FlagError{Err: fmt.Errorf("unknown shell %q: want bash, zsh, fish or powershell", shell)}
}
