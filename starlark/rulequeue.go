package starlark

import (
	"runtime"

	"go.starlark.net/starlark"

	"github.com/hepbuild/hepbuild/graph"
)

// pipelineAfter is how many rules a BUILD file declares on the
// interpreter's goroutine before it hands their declaration to a
// ruleQueue: a small package is not worth a goroutine. Tests lower it.
var pipelineAfter = 1024

// ruleBatch is how many rules go to the queue's goroutine at once: a
// channel operation for each of a million rules would cost more than the
// work it hands over.
const ruleBatch = 256

// flushSteps is how many steps of the interpreter a partial batch of rules
// may wait for its declaration (some milliseconds).
const flushSteps = 1 << 20

// ruleQueue declares a BUILD file's rule targets on a goroutine of its own
// while the interpreter goes on with the file: their outputs, their place in
// the package's map of names (a map of millions in a large package) and the
// sources they mention. The interpreter checks and converts each rule's
// attributes itself, so that their errors are raised where they are; what
// the queue finds wrong (a duplicate name, an output in conflict) stops the
// interpreter, and the loader runs the file again without a queue for the
// error, with its position and backtrace, that a run without one gives.
// The goroutine and the interpreter never touch the package at the same
// time: whatever reads what the queue writes (native.existing_rules, the
// end of the file) waits for it first, with sync.
//
// A ruleQueue is used by the interpreter's goroutine only (its own
// goroutine aside).
type ruleQueue struct {
	batch []queuedRule
	jobs  chan ruleJob
	// free returns declared batches for reuse: a million rules would
	// otherwise leave 100 MB of them to the collector.
	free chan []queuedRule
	done chan struct{} // closed when the goroutine has returned
	// err is the first error of a declaration; the goroutine writes it,
	// the interpreter reads it once sync returned.
	err error
}

// queuedRule is a rule call whose attributes are converted: the queue
// makes its target.
type queuedRule struct {
	label graph.Label
	pos   graph.Pos
	class *ruleClass
	attrs []graph.Attr
}

// ruleJob is a batch of rules to declare, and for sync a channel on which
// the goroutine answers once it declared them.
type ruleJob struct {
	rules []queuedRule
	ack   chan error
}

// startQueue starts the queue of b, whose BUILD file runs on thread, if
// the file has declared enough rules to be worth one and there is a second
// core to run it on.
func (b *pkgBuilder) startQueue(thread *starlark.Thread) {
	if b.queue != nil || !b.pipelined || b.rules < pipelineAfter || runtime.GOMAXPROCS(0) < 2 {
		return
	}
	q := &ruleQueue{batch: make([]queuedRule, 0, ruleBatch), jobs: make(chan ruleJob, 4), free: make(chan []queuedRule, 8), done: make(chan struct{})}
	b.queue = q
	// The last rules of a file may wait in a batch that is not full while
	// the file computes something else: hand them over now and then, so
	// that an error among them stops a long computation as it does
	// without a queue.
	thread.OnMaxSteps = func(thread *starlark.Thread) {
		if b.queue != nil && len(b.queue.batch) > 0 {
			b.queue.jobs <- ruleJob{rules: b.queue.batch}
			b.queue.batch = b.queue.newBatch()
		}
		thread.SetMaxExecutionSteps(thread.Steps + flushSteps)
	}
	thread.SetMaxExecutionSteps(thread.Steps + flushSteps)
	go func() {
		defer close(q.done)
		for j := range q.jobs {
			for _, r := range j.rules {
				if q.err != nil {
					break
				}
				if err := b.declareRule(newRuleTarget(r.label, r.pos, r.class, r.attrs), r.class); err != nil {
					q.err = err
					// What the interpreter does from here on is
					// discarded: stop it.
					thread.Cancel("a rule could not be declared")
				}
			}
			if j.ack != nil {
				j.ack <- q.err
			}
			clear(j.rules) // the targets are the package's now
			select {
			case q.free <- j.rules[:0]:
			default:
			}
		}
	}()
}

// push queues the declaration of a rule target.
func (q *ruleQueue) push(r queuedRule) {
	q.batch = append(q.batch, r)
	if len(q.batch) == ruleBatch {
		q.jobs <- ruleJob{rules: q.batch}
		q.batch = q.newBatch()
	}
}

func (q *ruleQueue) newBatch() []queuedRule {
	select {
	case b := <-q.free:
		return b
	default:
		return make([]queuedRule, 0, ruleBatch)
	}
}

// sync waits until the rules queued so far are declared, and returns the
// first error of a declaration.
func (q *ruleQueue) sync() error {
	ack := make(chan error)
	q.jobs <- ruleJob{rules: q.batch, ack: ack}
	q.batch = q.newBatch()
	return <-ack
}

// stopQueue declares what b's queue holds, if b has one, ends its
// goroutine, and returns the first error of a declaration.
func (b *pkgBuilder) stopQueue() error {
	q := b.queue
	if q == nil {
		return nil
	}
	err := q.sync()
	close(q.jobs)
	<-q.done
	b.queue = nil
	return err
}

// syncQueue waits for b's queue, if it has one, before the interpreter
// reads what it declares. An error means the interpreter is to stop.
func (b *pkgBuilder) syncQueue() error {
	if b.queue == nil {
		return nil
	}
	return b.queue.sync()
}
