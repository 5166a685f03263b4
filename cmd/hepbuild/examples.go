package main

// Each command's --help ends with examples (kong shows what Help returns
// below the command's one-line description).

func (BuildCmd) Help() string {
	return `Examples:
  hepbuild //analysis:datacards              # build a target and all it needs
  hepbuild build -k -j8 //analysis/...       # every target under analysis/, keep going past failures
  hepbuild build --executor=slurm //ana:all  # run the actions as Slurm jobs
  hepbuild build --server=https://builds.example.org //ana:all   # watch it on the group's dashboard`
}

func (QueryCmd) Help() string {
	return `Examples:
  hepbuild query 'deps(//analysis:datacards)'          # everything a target needs
  hepbuild query 'rdeps(//..., //samples:ttbar)'       # everything that reads a sample
  hepbuild query 'kind(task, //analysis/...)' --output=label_kind`
}

func (AqueryCmd) Help() string {
	return `Examples:
  hepbuild aquery //analysis:hist_tth        # the command, inputs and outputs of its actions
  hepbuild aquery 'deps(//analysis:fit)'`
}

func (StatusCmd) Help() string {
	return `Example:
  hepbuild status //analysis:datacards       # up to date, restorable from the cache, or to run`
}

func (ExplainCmd) Help() string {
	return `Example:
  hepbuild explain //analysis:hist_tth       # which input, command or variable changed`
}

func (CleanCmd) Help() string {
	return `Examples:
  hepbuild clean                             # remove the output tree
  hepbuild clean //analysis:fit              # remove one target's outputs
  hepbuild clean --cache --max-size 50GB     # prune the disk cache`
}

func (FetchCmd) Help() string {
	return `Example:
  hepbuild fetch //samples:all               # ask storage again; rewrite hepbuild.lock`
}

func (ExportCmd) Help() string {
	return `Example:
  hepbuild export //analysis:datacards davs://eos.example.org:443/eos/user/a/alice/results`
}

func (FmtCmd) Help() string {
	return `Examples:
  hepbuild fmt                               # format every BUILD and .star file of the workspace
  hepbuild fmt analysis/BUILD`
}

func (LintCmd) Help() string {
	return `Examples:
  hepbuild lint                              # every BUILD and .star file of the workspace; exit 1 on findings
  hepbuild lint --fix analysis/BUILD         # apply the automatic fixes and the formatting, report the rest
  hepbuild lint --warnings=-print,+module-docstring --format=json` + lintChecksHelp()
}

func (InfoCmd) Help() string {
	return `Examples:
  hepbuild info                              # everything
  hepbuild info output_base`
}

func (ServeCmd) Help() string {
	return `Examples:
  hepbuild serve                             # on this machine: http://127.0.0.1:8080/
  hepbuild serve --addr 0.0.0.0:8443 --token-file /etc/hepbuild/token --tls-cert cert.pem --tls-key key.pem`
}

func (CompletionCmd) Help() string {
	return `Examples:
  source <(hepbuild completion bash)         # in ~/.bashrc
  hepbuild completion zsh > ~/.zfunc/_hepbuild   # with fpath+=(~/.zfunc) before compinit in ~/.zshrc
  hepbuild completion fish > ~/.config/fish/completions/hepbuild.fish`
}
