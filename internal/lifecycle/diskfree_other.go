//go:build !unix

package lifecycle

import "errors"

// diskFree is unknown here: a restore then learns of a full disk from its
// writes.
func diskFree(string) (int64, error) { return 0, errors.New("free space unknown on this system") }
