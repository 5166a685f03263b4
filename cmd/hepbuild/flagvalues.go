package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/hepbuild/hepbuild/cache/disk"
)

// Flag values that check themselves when parsed, so that a value that
// makes no sense (-j 0, --retries=-1, --max-age=-1d, --disk-cache=) is
// refused before anything is loaded or written, with the flag's name, and
// exits 2 like every bad command line. Each type's zero value means the flag
// was not given.

// popString takes the flag's value as written.
func popString(ctx *kong.DecodeContext) (string, error) {
	var s string
	err := ctx.Scan.PopValueInto("a", &s)
	return s, err
}

// jobsValue is a count of at least 1.
type jobsValue int

func (v *jobsValue) Decode(ctx *kong.DecodeContext) error {
	s, err := popString(ctx)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 {
		return fmt.Errorf("%q: want a whole number of at least 1", s)
	}
	*v = jobsValue(n)
	return nil
}

// countValue is a count of at least 0.
type countValue int

func (v *countValue) Decode(ctx *kong.DecodeContext) error {
	s, err := popString(ctx)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return fmt.Errorf("%q: want a whole number, 0 or more", s)
	}
	*v = countValue(n)
	return nil
}

// sizeValue is a size as disk.ParseSize reads it.
type sizeValue string

func (v *sizeValue) Decode(ctx *kong.DecodeContext) error {
	s, err := popString(ctx)
	if err != nil {
		return err
	}
	if _, err := disk.ParseSize(s); err != nil {
		return err
	}
	*v = sizeValue(s)
	return nil
}

// bytes returns the size; only call it on a parsed, non-empty value.
func (v sizeValue) bytes() int64 {
	n, _ := disk.ParseSize(string(v))
	return n
}

// ageValue is an age as disk.ParseAge reads it.
type ageValue string

func (v *ageValue) Decode(ctx *kong.DecodeContext) error {
	s, err := popString(ctx)
	if err != nil {
		return err
	}
	if _, err := disk.ParseAge(s); err != nil {
		return err
	}
	*v = ageValue(s)
	return nil
}

// pathValue is a file or folder name, which may not be empty: an empty
// value would silently mean "the default" or the current folder.
type pathValue string

func (v *pathValue) Decode(ctx *kong.DecodeContext) error {
	s, err := popString(ctx)
	if err != nil {
		return err
	}
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("empty name: give a path, or leave the flag out for the default")
	}
	*v = pathValue(s)
	return nil
}
