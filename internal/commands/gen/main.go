// Command gen writes the CLI reference (docs/cli/*.md) and the shell
// completion scripts (completions/) from dproxy's cobra tree. `make
// generate` runs it; `make check-generated` fails when the committed files
// are stale. It is not part of the dproxy binary.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/dproxy/dproxy/internal/commands"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

func main() {
	docsDir := flag.String("docs", "docs/cli", "folder for the markdown reference")
	complDir := flag.String("completions", "completions", "folder for the completion scripts")
	flag.Parse()
	if err := run(*docsDir, *complDir); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(docsDir, complDir string) error {
	root := commands.NewRootCmd(&cmdutil.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	root.DisableAutoGenTag = true
	// The reference pages are dproxy*.md and json.md; the folder's other
	// pages (README.md: conventions, exit codes) are written by hand.
	old, err := filepath.Glob(filepath.Join(docsDir, "dproxy*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(docsDir, 0o755); err != nil {
		return err
	}
	if err := doc.GenMarkdownTree(root, docsDir); err != nil {
		return fmt.Errorf("write markdown to %s: %w", docsDir, err)
	}
	if err := os.WriteFile(filepath.Join(docsDir, "json.md"), []byte(jsonDoc()), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(complDir, 0o755); err != nil {
		return err
	}
	scripts := map[string]func(*bytes.Buffer) error{
		"dproxy.bash": func(b *bytes.Buffer) error { return root.GenBashCompletionV2(b, true) },
		"_dproxy":     func(b *bytes.Buffer) error { return root.GenZshCompletion(b) },
		"dproxy.fish": func(b *bytes.Buffer) error { return root.GenFishCompletion(b, true) },
		"dproxy.ps1":  func(b *bytes.Buffer) error { return root.GenPowerShellCompletionWithDesc(b) },
	}
	for name, gen := range scripts {
		var b bytes.Buffer
		if err := gen(&b); err != nil {
			return fmt.Errorf("generate %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(complDir, name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return checkExamples(root)
}

// checkExamples fails when a runnable command has no `$ dproxy` example,
// so the generated reference always shows how to call each command.
func checkExamples(cmd *cobra.Command) error {
	if cmd.Runnable() && !cmd.Hidden && cmd.Name() != "help" && !strings.Contains(cmd.Example, "$ dproxy") {
		return fmt.Errorf("%s has no `$ dproxy …` example", cmd.CommandPath())
	}
	for _, c := range cmd.Commands() {
		if err := checkExamples(c); err != nil {
			return err
		}
	}
	return nil
}
