// Package model holds the Go types the generated GraphQL code binds to by
// hand: GitLab's BigInt scalar. It must not import any other dproxy package.
package model

import (
	"fmt"
	"io"
	"strconv"
)

// BigInt is GitLab's BigInt: a 64-bit integer serialised as a JSON string.
type BigInt int64

// MarshalGQL writes the integer as a quoted decimal string.
func (b BigInt) MarshalGQL(w io.Writer) {
	io.WriteString(w, strconv.Quote(strconv.FormatInt(int64(b), 10)))
}

// UnmarshalGQL accepts a decimal string or an integer.
func (b *BigInt) UnmarshalGQL(v any) error {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return fmt.Errorf("BigInt %q: not a 64-bit integer", x)
		}
		*b = BigInt(n)
	case int64:
		*b = BigInt(x)
	case int:
		*b = BigInt(x)
	default:
		return fmt.Errorf("BigInt: want a string, got %T", v)
	}
	return nil
}
