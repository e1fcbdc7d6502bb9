package graphql

import (
	"context"
	"fmt"

	gql "github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/dproxy/dproxy/internal/server/graphql/generated"
)

// setComplexity makes a connection cost its page size times its nodes, so
// MaxComplexity bounds the rows one operation can make the server read.
func setComplexity(c *generated.ComplexityRoot) {
	c.Group.DependencyProxyManifests = func(child int, first *int, _ *string) int { return 1 + pageCost(first)*child }
	c.Group.DependencyProxyBlobs = func(child int, first *int, _ *string) int { return 1 + pageCost(first)*child }
	c.Group.Subgroups = func(child int) int { return 1 + MaxPageSize*child/10 }
	c.Group.Members = func(child int) int { return 1 + MaxPageSize*child/10 }
	c.Query.Groups = func(child int, _ *string, first *int, _ *string) int { return 1 + pageCost(first)*child }
	c.Query.Users = func(child int, first *int, _ *string) int { return 1 + pageCost(first)*child }
	c.Query.Tokens = func(child int, _ *string, _ *string) int { return 1 + MaxPageSize*child/10 }
}

func pageCost(first *int) int {
	if first == nil {
		return DefaultPageSize
	}
	return min(max(*first, 1), MaxPageSize)
}

// depthLimit refuses operations whose selections nest deeper than max.
type depthLimit struct{ max int }

var _ interface {
	gql.HandlerExtension
	gql.OperationContextMutator
} = depthLimit{}

func (depthLimit) ExtensionName() string               { return "DepthLimit" }
func (depthLimit) Validate(gql.ExecutableSchema) error { return nil }
func (d depthLimit) MutateOperationContext(_ context.Context, op *gql.OperationContext) *gqlerror.Error {
	if op.Operation == nil {
		return nil
	}
	if n := depth(op.Operation.SelectionSet, op.Doc.Fragments, 0); n > d.max {
		return gqlerror.Errorf("the operation nests %d levels deep; the limit is %d", n, d.max)
	}
	return nil
}

// depth is the nesting depth of a selection set; fragments count as the
// selections they spread. The level bound guards against fragment cycles,
// which validation rejects anyway.
func depth(set ast.SelectionSet, frags ast.FragmentDefinitionList, level int) int {
	deepest := level
	for _, s := range set {
		var n int
		switch s := s.(type) {
		case *ast.Field:
			if len(s.SelectionSet) == 0 {
				n = level + 1
			} else {
				n = depth(s.SelectionSet, frags, level+1)
			}
		case *ast.InlineFragment:
			n = depth(s.SelectionSet, frags, level)
		case *ast.FragmentSpread:
			if f := frags.ForName(s.Name); f != nil && level < 64 {
				n = depth(f.SelectionSet, frags, level)
			}
		default:
			panic(fmt.Sprintf("unknown selection %T", s))
		}
		deepest = max(deepest, n)
	}
	return deepest
}
