// Command dproxy is the dependency proxy server (`dproxy serve`) and its
// admin and operations CLI.
package main

import (
	"os"

	"github.com/dproxy/dproxy/internal/commands"
)

func main() {
	os.Exit(commands.Main())
}
