package lifecycle

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// dataDirLockName is the file in a data dir that servers hold a shared lock on
// while they use the data dir, and fsck an exclusive one when it can.
const dataDirLockName = "serve.lock"

// ErrDataDirInUse means a server holds the data dir.
var ErrDataDirInUse = errors.New("a dproxy server is using the data dir")

// DataDirLock is a lock on a data dir; Unlock releases it.
type DataDirLock struct{ f *os.File }

// Unlock releases the lock.
func (l *DataDirLock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	return l.f.Close()
}

// HoldDataDir takes a shared lock on dir for a server; any number of
// servers may hold it together. It waits while fsck holds the data dir.
func HoldDataDir(dir string) (*DataDirLock, error) {
	f, err := openLock(dir)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f, false, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	return &DataDirLock{f: f}, nil
}

// TryExclusive takes an exclusive lock on dir when no server holds it,
// so that nothing in it can belong to work in progress. It returns
// ErrDataDirInUse when a server holds the data dir, and
// errors.ErrUnsupported where the system has no file locks.
func TryExclusive(dir string) (*DataDirLock, error) {
	f, err := openLock(dir)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f, true, false); err != nil {
		f.Close()
		return nil, err
	}
	return &DataDirLock{f: f}, nil
}

func openLock(dir string) (*os.File, error) {
	path := filepath.Join(dir, dataDirLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open data dir lock %s: %w", path, err)
	}
	return f, nil
}
