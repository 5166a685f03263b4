package testserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
