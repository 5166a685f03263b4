package main

import (
	"net/http"

	"github.com/hepbuild/hepbuild/exec"
	"github.com/hepbuild/hepbuild/exec/server/coord"
)

// coordinate lets the build share work with the group's concurrent builds
// through the server it reports to: an action another build is running
// is waited for and restored from the cache instead of run twice.
func (rp *reporting) coordinate(runner *exec.Runner) {
	if rp == nil || rp.rep == nil || !rp.flags.Coordinate {
		return
	}
	var hc *http.Client
	if rp.client != nil && rp.client.Transport != nil {
		// The group's CA; a claim may wait up to api.MaxClaimWait, so no
		// bound on the request's time, and one connection per wait.
		t := rp.client.Transport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: t}
	}
	c := coord.NewClient(rp.flags.Server, hc, rp.token, rp.rep.ID(), rp.serverWarn)
	c.Ready = rp.rep.Started()
	runner.Coordinator = c
	rp.closers = append(rp.closers, func() { _ = c.Close() })
}
