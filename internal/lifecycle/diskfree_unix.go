//go:build unix

package lifecycle

import "golang.org/x/sys/unix"

// diskFree returns the bytes an unprivileged writer may use in dir.
func diskFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
