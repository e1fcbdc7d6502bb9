//go:build !unix

package lifecycle

import (
	"errors"
	"os"
)

// lockFile is not supported here: servers run without a data dir lock and
// fsck keeps its grace period.
func lockFile(_ *os.File, exclusive, _ bool) error {
	if exclusive {
		return errors.ErrUnsupported
	}
	return nil
}
