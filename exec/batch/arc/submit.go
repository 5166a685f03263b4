package arc

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hepbuild/hepbuild/exec/batch"
)

// Submit writes the array's jobs into one xRSL multi-job description in
// a.Dir and submits it with one arcsub call. It returns the jobs' ids (the
// ARC job URLs) in the jobs' order. When only some were submitted, it
// asks arcstat which job each id is (by the job name, which ends in the
// job's index) and returns those ids with an error.
func (b *Backend) Submit(ctx context.Context, a *batch.Array) ([]string, error) {
	if len(a.Jobs) == 0 {
		return nil, nil
	}
	desc, err := xrsl(a)
	if err != nil {
		return nil, err
	}
	if b.jobList != "" {
		if err := os.MkdirAll(filepath.Dir(b.jobList), 0o755); err != nil {
			return nil, fmt.Errorf("making the job list's folder: %w", err)
		}
	}
	file := filepath.Join(a.Dir, "arc.xrsl")
	if err := os.WriteFile(file, []byte(desc), 0o644); err != nil {
		return nil, fmt.Errorf("writing the job description: %w", err)
	}
	argv := []string{"arcsub"}
	if b.ce != "" {
		argv = append(argv, "-c", b.ce)
	}
	argv = append(argv, b.clientArgs()...)
	for _, o := range a.Options {
		if !strings.HasPrefix(o, "(") {
			argv = append(argv, o)
		}
	}
	argv = append(argv, file)
	res, err := b.run(ctx, argv)
	if err != nil {
		return nil, fmt.Errorf("submitting %s: %w", a.Name, err)
	}
	ids := parseSubmitted(res.Stdout)
	if len(ids) == len(a.Jobs) {
		// arcsub submits a multi-job description's jobs one after the
		// other, in order, and prints each id as it goes.
		return ids, nil
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("submitting %s: arcsub submitted no job (exit status %d): %s", a.Name, res.ExitCode, res.Brief())
	}
	placed, err := b.place(ctx, a, ids)
	if err != nil {
		// Jobs run that hepbuild cannot tell apart: cancel them rather
		// than leave work nobody waits for.
		b.Cancel(context.WithoutCancel(ctx), ids)
		return nil, fmt.Errorf("submitting %s: %d of %d jobs were submitted and could not be told apart (%v), so they were cancelled: %s",
			a.Name, len(ids), len(a.Jobs), err, res.Brief())
	}
	return placed, fmt.Errorf("submitting %s: only %d of %d jobs were submitted: %s", a.Name, len(ids), len(a.Jobs), res.Brief())
}

var submittedRE = regexp.MustCompile(`^Job submitted with jobid: (\S+)\s*$`)

// parseSubmitted returns the job ids arcsub printed, in order.
func parseSubmitted(out []byte) []string {
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := submittedRE.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			ids = append(ids, m[1])
		}
	}
	return ids
}

// place returns ids indexed like a.Jobs, with "" for jobs that were not
// submitted, from the names arcstat reports (jobname "<array>-<index>").
func (b *Backend) place(ctx context.Context, a *batch.Array, ids []string) ([]string, error) {
	statuses, err := b.status(ctx, ids)
	if err != nil {
		return nil, err
	}
	placed := make([]string, len(a.Jobs))
	prefix := a.Name + "-"
	for _, id := range ids {
		st, ok := statuses[id]
		if !ok || !strings.HasPrefix(st.Name, prefix) {
			return nil, fmt.Errorf("arcstat does not name job %s", id)
		}
		i, err := strconv.Atoi(strings.TrimPrefix(st.Name, prefix))
		if err != nil || i < 0 || i >= len(placed) || placed[i] != "" {
			return nil, fmt.Errorf("job %s has the unexpected name %q", id, st.Name)
		}
		placed[i] = id
	}
	return placed, nil
}
