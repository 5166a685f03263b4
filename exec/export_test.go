package exec

// SetDigestHook makes f run after each input of an action is digested, until
// the returned function is called. Tests use it to edit an input at the
// moment when the action's other inputs are still being hashed.
func SetDigestHook(f func(path string)) (restore func()) {
	old := testHookDigested
	testHookDigested = f
	return func() { testHookDigested = old }
}

// SetMaxTreeEntries lowers the bound on the entries of a restored output
// folder until the returned function is called.
func SetMaxTreeEntries(n int64) (restore func()) {
	old := maxTreeEntries
	maxTreeEntries = n
	return func() { maxTreeEntries = old }
}

// SetMaxRestoredLog lowers the bound on a log kept with a result until the
// returned function is called.
func SetMaxRestoredLog(n int64) (restore func()) {
	old := maxRestoredLog
	maxRestoredLog = n
	return func() { maxRestoredLog = old }
}

// SetKeyHook makes f run each time a runner computes an action's whole
// key, until the returned function is called.
func SetKeyHook(f func(a *Action)) (restore func()) {
	old := testHookKeyed
	testHookKeyed = f
	return func() { testHookKeyed = old }
}
