// Command hello is the entrypoint of the end-to-end suite's test images: a
// static binary that proves a pulled image runs.
package main

import (
	"fmt"
	"runtime"
)

func main() {
	fmt.Printf("hello from dproxy e2e (%s/%s)\n", runtime.GOOS, runtime.GOARCH)
}
