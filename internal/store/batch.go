package store

import (
	"slices"
	"strconv"
	"strings"
)

// maxBatch bounds the ids one batched read binds, far below SQLite's and
// PostgreSQL's limits on bound parameters; more ids take one read per
// maxBatch.
const maxBatch = 512

// inBatches calls read with the distinct ids, up to maxBatch at a time, as
// the placeholder list of an IN clause ("$1, $2, …") and its arguments.
// The list is padded to a power of two (at least 8) by repeating the last
// id, so a batched query has few distinct texts for the statement cache.
func inBatches(ids []int64, read func(in string, args []any) error) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for len(ids) > 0 {
		n := min(len(ids), maxBatch)
		chunk := ids[:n]
		ids = ids[n:]
		size := 8
		for size < n {
			size *= 2
		}
		var in strings.Builder
		args := make([]any, size)
		for i := range size {
			if i > 0 {
				in.WriteString(", ")
			}
			in.WriteString("$" + strconv.Itoa(i+1))
			args[i] = chunk[min(i, n-1)]
		}
		if err := read(in.String(), args); err != nil {
			return err
		}
	}
	return nil
}
