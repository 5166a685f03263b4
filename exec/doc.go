// Package exec holds actions, the action graph, the scheduler and the
// Executor interface that local and batch executors implement. It turns an
// analysed graph into results; it does not read BUILD files.
package exec
