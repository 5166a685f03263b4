package batch

import "strings"

// OnlyAbout reports whether a tool printed something and every line of it
// names one of phrases: a cancel whose only complaints are about jobs that
// already ended ("not found", "has already finished") did what was asked.
func OnlyAbout(output []byte, phrases ...string) bool {
	complained := false
	for _, l := range strings.Split(strings.TrimSpace(string(output)), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		complained = true
		found := false
		for _, p := range phrases {
			if strings.Contains(l, p) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return complained
}
