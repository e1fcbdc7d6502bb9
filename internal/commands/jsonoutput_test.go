package commands

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
)

// TestEveryCommandWithOutputIsDocumented checks that the commands taking
// -o are exactly those JSONOutputs lists, so docs/cli/json.md covers
// every one.
func TestEveryCommandWithOutputIsDocumented(t *testing.T) {
	t.Parallel()
	ios, _, _ := cmdutil.Test("")
	root := NewRootCmd(ios)
	listed := map[string]bool{}
	for _, o := range JSONOutputs() {
		if listed[o.Command] {
			t.Errorf("%s is listed twice", o.Command)
		}
		listed[o.Command] = true
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() || c.HasSubCommands() || c == root {
			return
		}
		path := strings.TrimPrefix(c.CommandPath(), "dproxy ")
		hasOutput := c.Flags().Lookup("output") != nil || c.PersistentFlags().Lookup("output") != nil || c.InheritedFlags().Lookup("output") != nil
		switch {
		case hasOutput && !listed[path]:
			t.Errorf("%s takes -o but JSONOutputs does not say what it prints", path)
		case !hasOutput && listed[path]:
			t.Errorf("%s is in JSONOutputs but takes no -o", path)
		}
		delete(listed, path)
	}
	walk(root)
	for p := range listed {
		t.Errorf("JSONOutputs lists %s, which is not a command", p)
	}
}
