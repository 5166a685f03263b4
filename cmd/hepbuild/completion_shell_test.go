package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The completion scripts, for real: each shell runs in a tmux pane with
// the script installed as BUILD.md says, hepbuild (this test binary, as
// main) on PATH; the test types, presses Tab and reads the screen.

// tmuxShell is a shell in the one pane of a tmux server of its own.
type tmuxShell struct {
	t      *testing.T
	socket string
}

// needShells fails the test when tmux or a shell is missing, and skips
// it only where they could not have been installed (not root: .ci/run
// warns then).
func needShells(t *testing.T) {
	t.Helper()
	var missing []string
	for _, p := range []string{"tmux", "bash", "zsh", "fish"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if _, err := os.Stat("/usr/share/bash-completion/bash_completion"); err != nil {
		missing = append(missing, "bash-completion")
	}
	if len(missing) == 0 {
		return
	}
	msg := "missing " + strings.Join(missing, ", ") + ": .ci/run installs them (apt-get install tmux zsh fish bash-completion)"
	if os.Getuid() != 0 {
		t.Skip(msg + "; not root")
	}
	t.Fatal(msg)
}

// startShell starts argv in a tmux pane of 200x50 in dir, with only the
// environment given, and stops the tmux server when the test ends.
func startShell(t *testing.T, dir string, env []string, argv ...string) *tmuxShell {
	t.Helper()
	s := &tmuxShell{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	args := append([]string{"-S", s.socket, "new-session", "-d", "-x", "200", "-y", "50", "-c", dir, "env", "-i"}, env...)
	if out, err := exec.Command("tmux", append(args, argv...)...).CombinedOutput(); err != nil {
		t.Fatalf("starting %v in tmux: %v\n%s", argv, err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "-S", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxShell) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// typeText types text as it is; keys presses keys by their tmux names (Tab, Enter, C-c).
func (s *tmuxShell) typeText(text string) { s.tmux("send-keys", "-t", "0", "-l", text) }
func (s *tmuxShell) keys(keys ...string) {
	for _, k := range keys {
		s.tmux("send-keys", "-t", "0", k)
		time.Sleep(300 * time.Millisecond) // two Tabs are a double Tab only when read apart
	}
}

func (s *tmuxShell) screen() string { return s.tmux("capture-pane", "-p", "-t", "0") }

// waitFor returns the screen once it shows every one of want.
func (s *tmuxShell) waitFor(what string, want ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		scr := s.screen()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(scr, w)
		}
		if ok {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: the screen does not show %q:\n%s", what, want, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reset abandons the line being typed and clears the screen.
func (s *tmuxShell) reset() {
	s.keys("C-c")
	s.typeText("clear")
	s.keys("Enter")
	time.Sleep(300 * time.Millisecond)
}

func TestCompletionInShells(t *testing.T) {
	needShells(t)
	root := testWorkspace(t, completionFiles())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	script := "#!/bin/sh\n" + asMainEnv + "=1 exec " + self + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "hepbuild"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	shells := []struct {
		name    string
		argv    []string
		install string // what BUILD.md says to put in the shell's start-up file
	}{
		{"bash", []string{"bash", "--norc", "--noprofile"},
			"PS1='$ '; source /usr/share/bash-completion/bash_completion; source <(hepbuild completion bash)"},
		{"zsh", []string{"zsh", "-f"},
			"PS1='$ '; mkdir -p ~/.zfunc && hepbuild completion zsh > ~/.zfunc/_hepbuild && fpath+=(~/.zfunc) && autoload -Uz compinit && compinit -u"},
		{"fish", []string{"fish", "--no-config"},
			"function fish_prompt; echo '$ '; end; hepbuild completion fish | source"},
	}
	for _, sh := range shells {
		t.Run(sh.name, func(t *testing.T) {
			home := t.TempDir()
			env := []string{"HOME=" + home, "TERM=xterm-256color", "LANG=C.UTF-8",
				"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin", "XDG_CACHE_HOME=" + os.Getenv("XDG_CACHE_HOME")}
			s := startShell(t, root, env, sh.argv...)
			// The quotes keep the typed line from showing what is awaited.
			s.typeText(sh.install + "; echo in''stalled")
			s.keys("Enter")
			s.waitFor("installing the script", "\ninstalled")
			s.reset()

			// A package path, then the package's targets, listed.
			s.typeText("hepbuild //an")
			s.keys("Tab")
			s.waitFor("//an Tab", "hepbuild //ana")
			s.typeText(":hist_tt")
			s.keys("Tab", "Tab")
			s.waitFor("//ana:hist_tt Tab Tab", "hist_ttbb", "hist_tth")
			s.reset()

			// One target: completed in full.
			s.typeText("hepbuild //ana:fi")
			s.keys("Tab")
			s.waitFor("//ana:fi Tab", "hepbuild //ana:fit")
			s.reset()

			// A flag's value.
			s.typeText("hepbuild --progress=pl")
			s.keys("Tab")
			s.waitFor("--progress=pl Tab", "hepbuild --progress=plain")
			s.reset()

			// A relative label, in the package -C names.
			// The blank after it shows before the next character typed (the
			// screen's lines lose their trailing blanks).
			s.typeText("hepbuild -C ana :hist_tth")
			s.keys("Tab")
			s.typeText("X")
			s.waitFor("-C ana :hist_tth Tab", "hepbuild -C ana :hist_tth X")
			s.reset()

			// A query: the function, then a label inside the quotes; the
			// completed line runs and prints the target's dependencies.
			s.typeText("hepbuild query 'de")
			s.keys("Tab")
			s.waitFor("query 'de Tab", "hepbuild query 'deps(")
			s.typeText("//ana:fi")
			s.keys("Tab")
			s.waitFor("query 'deps(//ana:fi Tab", "hepbuild query 'deps(//ana:fit")
			s.typeText(")'")
			s.keys("Enter")
			s.waitFor("the completed query", "//ana:hist_tth\n", "//ana:in.txt\n")
		})
	}
}
