package testserver

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BBStorage is a running Buildbarn bb_storage: a REAPI content-addressable
// storage and action cache speaking the current API version, with no
// scheduler behind it.
type BBStorage struct {
	*Process
	Dir  string // its temporary folder (config, log)
	Addr string // host:port of its gRPC services
}

// bbStorageConfig keeps the CAS and the action cache in memory. A block
// must hold the largest blob a test stores (9 MiB in remotetest), hence
// 16 MiB CAS blocks; few blocks keep the memory small. ZSTD is announced so
// that clients can exercise compressed ByteStream transfers.
const bbStorageConfig = `local mem(blockSize, blocks) = {
  'local': {
    keyLocationMapInMemory: { entries: 64 * 1024 },
    keyLocationMapMaximumGetAttempts: 16,
    keyLocationMapMaximumPutAttempts: 64,
    oldBlocks: blocks,
    currentBlocks: blocks,
    newBlocks: 1,
    blocksInMemory: { blockSizeBytes: blockSize },
  },
};
{
  grpcServers: [{ listenAddresses: ['%s'], authenticationPolicy: { allow: {} } }],
  maximumMessageSizeBytes: 16 * 1024 * 1024,
  supportedCompressors: ['ZSTD'],
  contentAddressableStorage: {
    backend: mem(16 * 1024 * 1024, 2),
    getAuthorizer: { allow: {} },
    putAuthorizer: { allow: {} },
    findMissingAuthorizer: { allow: {} },
  },
  actionCache: {
    backend: mem(1024 * 1024, 1),
    getAuthorizer: { allow: {} },
    putAuthorizer: { allow: {} },
  },
}
`

// StartBBStorage starts bb_storage (built by .ci/services/buildbarn.sh)
// with an empty in-memory store on a free loopback port.
func StartBBStorage(t testing.TB) *BBStorage {
	t.Helper()
	bin := Binary(t, "bb_storage", "buildbarn.sh")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	config := filepath.Join(dir, "storage.jsonnet")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(bbStorageConfig, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Start(t, dir, "bb_storage", exec.Command(bin, config))
	WaitTCP(t, p, addr, 20*time.Second)
	return &BBStorage{Process: p, Dir: dir, Addr: addr}
}

// Buildbarn is a running Buildbarn remote execution cluster: bb_storage
// (CAS, action cache and the Execution frontend), bb_scheduler, and one
// bb_worker with its bb_runner, which runs actions as this user on this
// machine.
type Buildbarn struct {
	Dir  string // its temporary folder (configs, logs, build folders)
	Addr string // host:port of the frontend: Execution, CAS, action cache, Capabilities

	Storage, Scheduler, Worker, Runner *Process
	adminAddr                          string
	startStorage                       func(testing.TB) *Process
	restarts                           int
}

// RestartStorage kills the frontend (bb_storage: the CAS, the action cache
// and the Execution service clients talk to), waits for down, and starts
// it again on the same port, empty. The scheduler and worker keep running,
// and so do their operations.
func (b *Buildbarn) RestartStorage(t testing.TB, down time.Duration) {
	t.Helper()
	b.Storage.Cmd.Process.Kill()
	b.Storage.Stop()
	time.Sleep(down)
	b.Storage = b.startStorage(t)
	WaitTCP(t, b.Storage, b.Addr, 20*time.Second)
}

// URL is grpc://Addr.
func (b *Buildbarn) URL() string { return "grpc://" + b.Addr }

// Stop stops the cluster, the worker first: it drains through the
// scheduler, which must still be there. It may be called more than once.
func (b *Buildbarn) Stop() {
	for _, p := range []*Process{b.Worker, b.Runner, b.Scheduler, b.Storage} {
		p.Stop()
	}
}

// bbCommon is shared by the configs: where the storage is, how blocks of
// the in-memory stores look.
const bbCommon = `{
  storage: '%[1]s',
  blobstore: {
    contentAddressableStorage: { grpc: { client: { address: '%[1]s' } } },
    actionCache: {
      completenessChecking: {
        backend: { grpc: { client: { address: '%[1]s' } } },
        maximumTotalTreeSizeBytes: 64 * 1024 * 1024,
      },
    },
  },
  maximumMessageSizeBytes: 16 * 1024 * 1024,
  mem(blockSize, blocks): {
    'local': {
      keyLocationMapInMemory: { entries: 64 * 1024 },
      keyLocationMapMaximumGetAttempts: 16,
      keyLocationMapMaximumPutAttempts: 64,
      oldBlocks: blocks,
      currentBlocks: blocks,
      newBlocks: 1,
      blocksInMemory: { blockSizeBytes: blockSize },
    },
  },
}
`

// bbFrontendStorage is bb_storage as the cluster's frontend: Execute and
// WaitExecution go to the scheduler.
const bbFrontendStorage = `local common = import 'common.libsonnet';
{
  grpcServers: [{ listenAddresses: [common.storage], authenticationPolicy: { allow: {} } }],
  maximumMessageSizeBytes: common.maximumMessageSizeBytes,
  schedulers: { '': { endpoint: { address: '%s' } } },
  executeAuthorizer: { allow: {} },
  contentAddressableStorage: {
    backend: common.mem(16 * 1024 * 1024, 2),
    getAuthorizer: { allow: {} },
    putAuthorizer: { allow: {} },
    findMissingAuthorizer: { allow: {} },
  },
  actionCache: {
    backend: common.mem(1024 * 1024, 1),
    getAuthorizer: { allow: {} },
    putAuthorizer: { allow: {} },
  },
}
`

// bbScheduler routes every action to one queue, whatever its platform
// properties: hepbuild's Command carries properties of its own
// (hepbuild-environment, hepbuild-action-kind, OSFamily, ISA, ...) that
// are part of the action key and must stay so, and that no worker
// announces. A static platform key (here the empty platform, which the
// worker announces) makes Buildbarn accept them; BUILD-section.md in
// exec/remote says so for real services.
const bbScheduler = `local common = import 'common.libsonnet';
{
  adminHttpServers: [{ listenAddresses: ['%s'], authenticationPolicy: { allow: {} } }],
  clientGrpcServers: [{ listenAddresses: ['%s'], authenticationPolicy: { allow: {} } }],
  workerGrpcServers: [{ listenAddresses: ['%s'], authenticationPolicy: { allow: {} } }],
  browserUrl: 'http://127.0.0.1:1',
  contentAddressableStorage: common.blobstore.contentAddressableStorage,
  maximumMessageSizeBytes: common.maximumMessageSizeBytes,
  executeAuthorizer: { allow: {} },
  modifyDrainsAuthorizer: { allow: {} },
  killOperationsAuthorizer: { allow: {} },
  synchronizeAuthorizer: { allow: {} },
  actionRouter: {
    simple: {
      platformKeyExtractor: { static: {} },
      invocationKeyExtractors: [{ correlatedInvocationsId: {} }, { toolInvocationId: {} }],
      initialSizeClassAnalyzer: { defaultExecutionTimeout: '1800s', maximumExecutionTimeout: '7200s' },
    },
  },
  platformQueueWithNoWorkersTimeout: '900s',
}
`

const bbWorker = `local common = import 'common.libsonnet';
{
  blobstore: common.blobstore,
  browserUrl: 'http://127.0.0.1:1',
  maximumMessageSizeBytes: common.maximumMessageSizeBytes,
  scheduler: { address: '%[1]s' },
  buildDirectories: [{
    native: {
      buildDirectoryPath: '%[2]s/build',
      cacheDirectoryPath: '%[2]s/cache',
      maximumCacheFileCount: 10000,
      maximumCacheSizeBytes: 256 * 1024 * 1024,
      cacheReplacementPolicy: 'LEAST_RECENTLY_USED',
    },
    runners: [{
      endpoint: { address: 'unix://%[3]s' },
      concurrency: 2,
      maximumFilePoolFileCount: 10000,
      maximumFilePoolSizeBytes: 256 * 1024 * 1024,
      platform: {},
      workerId: { hostname: 'localhost' },
    }],
  }],
  filePool: { blockDevice: { file: { path: '%[2]s/filepool', sizeBytes: 256 * 1024 * 1024 } } },
  inputDownloadConcurrency: 10,
  outputUploadConcurrency: 11,
  directoryCache: { maximumCount: 1000, maximumSizeBytes: 1000 * 1024, cacheReplacementPolicy: 'LEAST_RECENTLY_USED' },
}
`

const bbRunner = `{
  buildDirectoryPath: '%s/build',
  grpcServers: [{ listenPaths: ['%s'], authenticationPolicy: { allow: {} } }],
}
`

// StartBuildbarn starts a Buildbarn cluster (built by
// .ci/services/buildbarn.sh) on free loopback ports, with empty in-memory
// stores, and waits until its worker has registered with the scheduler:
// before that, an action would wait in a queue nobody serves.
func StartBuildbarn(t testing.TB) *Buildbarn {
	t.Helper()
	bins := map[string]string{}
	for _, n := range []string{"bb_storage", "bb_scheduler", "bb_worker", "bb_runner"} {
		bins[n] = Binary(t, n, "buildbarn.sh")
	}
	dir := t.TempDir()
	// A unix socket's path is limited to about 100 bytes, which a test's
	// temporary folder may exceed.
	sockDir, err := os.MkdirTemp("", "bb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "runner")
	workDir := filepath.Join(dir, "worker")
	for _, d := range []string{"build", "cache"} {
		if err := os.MkdirAll(filepath.Join(workDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", FreePort(t)) }
	b := &Buildbarn{Dir: dir, Addr: addr(), adminAddr: addr()}
	clientAddr, workerAddr := addr(), addr()
	files := map[string]string{
		"common.libsonnet":  fmt.Sprintf(bbCommon, b.Addr),
		"storage.jsonnet":   fmt.Sprintf(bbFrontendStorage, clientAddr),
		"scheduler.jsonnet": fmt.Sprintf(bbScheduler, b.adminAddr, clientAddr, workerAddr),
		"worker.jsonnet":    fmt.Sprintf(bbWorker, workerAddr, workDir, socket),
		"runner.jsonnet":    fmt.Sprintf(bbRunner, workDir, socket),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := func(name string) *Process {
		cmd := exec.Command(bins["bb_"+name], filepath.Join(dir, name+".jsonnet"))
		cmd.Dir = dir
		return Start(t, dir, "bb_"+name, cmd)
	}
	b.startStorage = func(t testing.TB) *Process {
		b.restarts++
		cmd := exec.Command(bins["bb_storage"], filepath.Join(dir, "storage.jsonnet"))
		cmd.Dir = dir
		return Start(t, dir, fmt.Sprintf("bb_storage.%d", b.restarts), cmd)
	}
	b.Storage = start("storage")
	b.Scheduler = start("scheduler")
	b.Runner = start("runner")
	b.Worker = start("worker")
	// Registered after the processes' own: cleanups run last-in first-out,
	// so this stops the worker before the scheduler it drains through.
	t.Cleanup(b.Stop)
	WaitTCP(t, b.Storage, b.Addr, 20*time.Second)
	b.waitWorker(t, 30*time.Second)
	return b
}

// waitWorker waits until the scheduler's admin page lists a worker queue.
func (b *Buildbarn) waitWorker(t testing.TB, within time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get("http://" + b.adminAddr + "/")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "workers?filter") {
			return
		}
	}
	var logs strings.Builder
	for _, p := range []*Process{b.Storage, b.Scheduler, b.Worker, b.Runner} {
		l, _ := os.ReadFile(p.Log)
		fmt.Fprintf(&logs, "--- %s\n%s\n", filepath.Base(p.Log), l)
	}
	t.Fatalf("no Buildbarn worker registered within %v; the logs:\n%s", within, logs.String())
}
