package store

import (
	"cmp"
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
	return inBatchesAfter(nil, ids, read)
}

// inBatchesAfter is inBatches for a query whose first arguments are lead:
// the IN list's placeholders follow theirs, and args starts with them.
func inBatchesAfter[T cmp.Ordered](lead []any, vals []T, read func(in string, args []any) error) error {
	vals = slices.Clone(vals)
	slices.Sort(vals)
	vals = slices.Compact(vals)
	for len(vals) > 0 {
		n := min(len(vals), maxBatch)
		chunk := vals[:n]
		vals = vals[n:]
		size := 8
		for size < n {
			size *= 2
		}
		var in strings.Builder
		args := append(make([]any, 0, len(lead)+size), lead...)
		for i := range size {
			if i > 0 {
				in.WriteString(", ")
			}
			in.WriteString("$" + strconv.Itoa(len(lead)+i+1))
			args = append(args, chunk[min(i, n-1)])
		}
		if err := read(in.String(), args); err != nil {
			return err
		}
	}
	return nil
}
