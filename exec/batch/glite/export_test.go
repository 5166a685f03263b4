package glite

// SetMaxIDArgs lets tests use the id file without thousands of jobs.
func SetMaxIDArgs(n int) (restore func()) {
	old := maxIDArgs
	maxIDArgs = n
	return func() { maxIDArgs = old }
}
