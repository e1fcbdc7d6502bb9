// Package arch has no code of its own: its test keeps the import arrows of
// DESIGN.md §8 pointing down (which dproxy package may import which, and
// which package alone may use each third-party library). It imports
// nothing and nothing may import it.
package arch
