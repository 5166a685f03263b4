package server

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hepbuild/hepbuild/exec/server/api"
)

// plan is a build's action graph in flat arrays: a million actions cost a
// few tens of megabytes and no per-action allocation. Actions are indexed
// by their id; targets and mnemonics are interned.
type plan struct {
	target  []int32 // per action: index into targets, -1 before it is planned
	mnem    []int32 // per action: index into mnemonics
	depOff  []int32 // per action: start of its deps in deps
	depN    []int32 // per action: number of deps
	deps    []int32
	planned int // actions planned so far

	targets   []string
	targetIdx map[string]int32
	first     []int32 // per target: its lowest action id
	mnemonics []string
	mnemIdx   map[string]int32
}

func newPlan() *plan {
	return &plan{targetIdx: map[string]int32{}, mnemIdx: map[string]int32{}}
}

// grow makes room for action ids below n.
func (p *plan) grow(n int) {
	for len(p.target) < n {
		p.target = append(p.target, -1)
		p.mnem = append(p.mnem, 0)
		p.depOff = append(p.depOff, 0)
		p.depN = append(p.depN, 0)
	}
}

func (p *plan) depsOf(id int32) []int32 {
	o := p.depOff[id]
	return p.deps[o : o+p.depN[id]]
}

func (p *plan) targetOf(id int32) string {
	if int(id) >= len(p.target) || p.target[id] < 0 {
		return ""
	}
	return p.targets[p.target[id]]
}

func (p *plan) mnemonicOf(id int32) string {
	if int(id) >= len(p.target) || p.target[id] < 0 {
		return ""
	}
	return p.mnemonics[p.mnem[id]]
}

// add records one planned action and returns its target index and whether
// the action is new (a re-sent action changes nothing).
func (p *plan) add(a *api.PlannedAction) (int32, bool) {
	p.grow(int(a.ID) + 1)
	if t := p.target[a.ID]; t >= 0 {
		return t, false
	}
	t, ok := p.targetIdx[a.Target]
	if !ok {
		t = int32(len(p.targets))
		p.targets = append(p.targets, a.Target)
		p.targetIdx[a.Target] = t
		p.first = append(p.first, a.ID)
	} else if a.ID < p.first[t] {
		p.first[t] = a.ID
	}
	m, ok := p.mnemIdx[a.Mnemonic]
	if !ok {
		m = int32(len(p.mnemonics))
		p.mnemonics = append(p.mnemonics, a.Mnemonic)
		p.mnemIdx[a.Mnemonic] = m
	}
	p.target[a.ID] = t
	p.mnem[a.ID] = m
	p.depOff[a.ID] = int32(len(p.deps))
	p.depN[a.ID] = int32(len(a.Deps))
	p.deps = append(p.deps, a.Deps...)
	p.planned++
	return t, true
}

// encodePlan writes a batch's planned actions compactly: a string table of
// the targets and mnemonics the batch uses, then per action its id, string
// indices and deps, all as varints (deps as deltas from the action's id,
// which are small in a graph built in order).
func encodePlan(actions []api.PlannedAction) []byte {
	idx := map[string]uint64{}
	var strs []string
	intern := func(s string) uint64 {
		i, ok := idx[s]
		if !ok {
			i = uint64(len(strs))
			idx[s] = i
			strs = append(strs, s)
		}
		return i
	}
	body := make([]byte, 0, len(actions)*12)
	for i := range actions {
		a := &actions[i]
		body = binary.AppendUvarint(body, uint64(a.ID))
		body = binary.AppendUvarint(body, intern(a.Target))
		body = binary.AppendUvarint(body, intern(a.Mnemonic))
		body = binary.AppendUvarint(body, uint64(len(a.Deps)))
		for _, d := range a.Deps {
			body = binary.AppendVarint(body, int64(a.ID)-int64(d))
		}
	}
	out := binary.AppendUvarint(nil, uint64(len(strs)))
	for _, s := range strs {
		out = binary.AppendUvarint(out, uint64(len(s)))
		out = append(out, s...)
	}
	out = binary.AppendUvarint(out, uint64(len(actions)))
	return append(out, body...)
}

var errCorrupt = errors.New("corrupt plan record")

// decodePlan calls add with each action of one encodePlan record; a is
// reused between calls.
func decodePlan(data []byte, add func(a *api.PlannedAction)) error {
	r := reader{b: data}
	n := r.uvarint()
	if n > uint64(len(data)) {
		return errCorrupt
	}
	strs := make([]string, n)
	for i := range strs {
		strs[i] = r.str()
	}
	count := r.uvarint()
	if count > uint64(len(data)) {
		return errCorrupt
	}
	var a api.PlannedAction
	for range count {
		a.ID = int32(r.uvarint())
		ti, mi := r.uvarint(), r.uvarint()
		nd := r.uvarint()
		if r.err != nil || ti >= uint64(len(strs)) || mi >= uint64(len(strs)) || nd > uint64(len(data)) || a.ID < 0 || a.ID >= maxActions {
			return errCorrupt
		}
		a.Target, a.Mnemonic = strs[ti], strs[mi]
		a.Deps = a.Deps[:0]
		for range nd {
			d := int64(a.ID) - r.varint()
			if d < 0 || d >= maxActions {
				return errCorrupt
			}
			a.Deps = append(a.Deps, int32(d))
		}
		add(&a)
	}
	if r.err != nil {
		return fmt.Errorf("%w: %v", errCorrupt, r.err)
	}
	return nil
}

// reader reads varints and strings, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		r.b = nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
