package exec

import (
	"context"
	"errors"
	"io"
)

// Fetcher downloads the remote files of fetch actions (KindFetch).
// Implementations are safe for concurrent use.
type Fetcher interface {
	// Fetch writes the file's content to w, verifying it against the
	// file's size and checksum while it streams. Content that does not
	// match is a *FetchError; a storage that cannot be reached is any
	// other error (an infrastructure failure, not the action's).
	Fetch(ctx context.Context, f *RemoteFile, w io.Writer) error
}

// FetchError says why a remote file's content was refused or could not
// be found: the action fails with it, and nothing is stored.
type FetchError struct {
	URL string
	Msg string
}

func (e *FetchError) Error() string { return e.URL + ": " + e.Msg }

// IsFetchError reports whether err is (or wraps) a *FetchError.
func IsFetchError(err error) bool {
	var fe *FetchError
	return errors.As(err, &fe)
}
