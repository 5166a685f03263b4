package reapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/bazelbuild/remote-apis/build/bazel/semver"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/genproto/googleapis/bytestream"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hepbuild/hepbuild/cache"
	"github.com/hepbuild/hepbuild/cache/remote"
	"github.com/hepbuild/hepbuild/cache/remote/remotetest"
)

// fakeServer is an in-process REAPI cache server. It is a fake, not a real
// server, because the behaviour these tests need cannot be had from a
// real one: it serves content that does not match its digest, stalls
// without answering, refuses credentials while quoting them, and records
// the metadata, resource names and calls it received.
type fakeServer struct {
	repb.UnimplementedContentAddressableStorageServer
	repb.UnimplementedCapabilitiesServer
	repb.UnimplementedActionCacheServer
	bytestream.UnimplementedByteStreamServer

	zstd      bool   // announce ZSTD
	maxBatch  int64  // announced max_batch_total_size_bytes
	token     string // the authorization value required, if any
	stall     bool   // never answer any call
	stallRead bool   // send the first chunk of a Read, then nothing

	mu          sync.Mutex
	blobs       map[string][]byte // content served for a hash, true or not
	findMissing int               // FindMissingBlobs calls
	resources   []string          // ByteStream resource names used
	finished    int               // Writes that got finish_write
	metadata    []metadata.MD     // of every call
}

func startFake(t *testing.T, f *fakeServer) string {
	t.Helper()
	f.blobs = map[string][]byte{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := f.admit(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := f.admit(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)
	repb.RegisterContentAddressableStorageServer(s, f)
	repb.RegisterCapabilitiesServer(s, f)
	repb.RegisterActionCacheServer(s, f)
	bytestream.RegisterByteStreamServer(s, f)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

func (f *fakeServer) admit(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.metadata = append(f.metadata, md)
	f.mu.Unlock()
	if f.stall {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.token != "" {
		if got := md.Get("authorization"); len(got) != 1 || got[0] != f.token {
			// Quoting the refused credential, as careless servers do.
			return status.Errorf(codes.Unauthenticated, "credential %q refused", strings.Join(got, ","))
		}
	}
	return nil
}

func (f *fakeServer) put(d cache.Digest, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blobs[d.Hash] = b
}

func (f *fakeServer) get(hash string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.blobs[hash]
	return b, ok
}

func (f *fakeServer) GetCapabilities(context.Context, *repb.GetCapabilitiesRequest) (*repb.ServerCapabilities, error) {
	cc := &repb.CacheCapabilities{
		DigestFunctions:        []repb.DigestFunction_Value{repb.DigestFunction_SHA256},
		MaxBatchTotalSizeBytes: f.maxBatch,
	}
	if f.zstd {
		cc.SupportedCompressors = []repb.Compressor_Value{repb.Compressor_ZSTD}
	}
	return &repb.ServerCapabilities{
		CacheCapabilities: cc,
		LowApiVersion:     &semver.SemVer{Major: 2},
		HighApiVersion:    &semver.SemVer{Major: 2, Minor: 3},
	}, nil
}

func (f *fakeServer) FindMissingBlobs(_ context.Context, req *repb.FindMissingBlobsRequest) (*repb.FindMissingBlobsResponse, error) {
	f.mu.Lock()
	f.findMissing++
	f.mu.Unlock()
	resp := &repb.FindMissingBlobsResponse{}
	for _, d := range req.GetBlobDigests() {
		if _, ok := f.get(d.GetHash()); !ok {
			resp.MissingBlobDigests = append(resp.MissingBlobDigests, d)
		}
	}
	return resp, nil
}

func (f *fakeServer) BatchReadBlobs(_ context.Context, req *repb.BatchReadBlobsRequest) (*repb.BatchReadBlobsResponse, error) {
	resp := &repb.BatchReadBlobsResponse{}
	for _, d := range req.GetDigests() {
		r := &repb.BatchReadBlobsResponse_Response{Digest: d, Status: &rpcstatus.Status{}}
		if b, ok := f.get(d.GetHash()); ok {
			r.Data = b
		} else {
			r.Status.Code = int32(codes.NotFound)
		}
		resp.Responses = append(resp.Responses, r)
	}
	return resp, nil
}

func (f *fakeServer) BatchUpdateBlobs(_ context.Context, req *repb.BatchUpdateBlobsRequest) (*repb.BatchUpdateBlobsResponse, error) {
	resp := &repb.BatchUpdateBlobsResponse{}
	for _, r := range req.GetRequests() {
		f.put(cache.FromProto(r.GetDigest()), r.GetData())
		resp.Responses = append(resp.Responses, &repb.BatchUpdateBlobsResponse_Response{Digest: r.GetDigest(), Status: &rpcstatus.Status{}})
	}
	return resp, nil
}

// parse returns the digest and compression of a resource name
// ".../blobs/HASH/SIZE" or ".../compressed-blobs/zstd/HASH/SIZE".
func parse(name string) (cache.Digest, bool, error) {
	parts := strings.Split(name, "/")
	if len(parts) < 3 {
		return cache.Digest{}, false, status.Errorf(codes.InvalidArgument, "bad resource name %q", name)
	}
	d, err := cache.ParseDigest(strings.Join(parts[len(parts)-2:], "/"))
	if err != nil {
		return d, false, status.Error(codes.InvalidArgument, err.Error())
	}
	return d, strings.Contains(name, "compressed-blobs/zstd/"), nil
}

func (f *fakeServer) Read(req *bytestream.ReadRequest, s bytestream.ByteStream_ReadServer) error {
	f.mu.Lock()
	f.resources = append(f.resources, req.GetResourceName())
	f.mu.Unlock()
	d, compressed, err := parse(req.GetResourceName())
	if err != nil {
		return err
	}
	b, ok := f.get(d.Hash)
	if !ok {
		return status.Error(codes.NotFound, "no such blob")
	}
	if compressed {
		enc, _ := zstd.NewWriter(nil)
		b = enc.EncodeAll(b, nil)
	}
	for i := 0; i == 0 || i < len(b); i += 64 << 10 {
		if err := s.Send(&bytestream.ReadResponse{Data: b[i:min(i+64<<10, len(b))]}); err != nil {
			return err
		}
		if f.stallRead {
			<-s.Context().Done()
			return s.Context().Err()
		}
	}
	return nil
}

func (f *fakeServer) Write(s bytestream.ByteStream_WriteServer) error {
	var name string
	var data []byte
	for {
		req, err := s.Recv()
		if err != nil {
			return err // the client gave up: nothing is stored
		}
		if name == "" {
			name = req.GetResourceName()
			f.mu.Lock()
			f.resources = append(f.resources, name)
			f.mu.Unlock()
		}
		data = append(data, req.GetData()...)
		if req.GetFinishWrite() {
			break
		}
	}
	f.mu.Lock()
	f.finished++
	f.mu.Unlock()
	d, compressed, err := parse(name)
	if err != nil {
		return err
	}
	n := int64(len(data))
	if compressed {
		dec, _ := zstd.NewReader(nil)
		if data, err = dec.DecodeAll(data, nil); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
	}
	f.put(d, data)
	return s.SendAndClose(&bytestream.WriteResponse{CommittedSize: n})
}

func (f *fakeServer) GetActionResult(context.Context, *repb.GetActionResultRequest) (*repb.ActionResult, error) {
	return nil, status.Error(codes.NotFound, "no such action")
}

// sameSize returns different content of the same size as b.
func sameSize(b []byte) []byte {
	w := bytes.Clone(b)
	w[len(w)/2] ^= 0xff
	return w
}

func TestCorruptBatchBlobIsAbsent(t *testing.T) {
	f := &fakeServer{}
	c := open(t, "grpc://"+startFake(t, f), remote.Options{})
	ctx := context.Background()
	good, gd := remotetest.Blob(t, 1000)
	bad, bd := remotetest.Blob(t, 1000)
	f.put(gd, good)
	f.put(bd, sameSize(bad))

	got, err := c.GetBatch(ctx, []cache.Digest{gd, bd})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[gd], good) {
		t.Error("GetBatch lost the correct blob")
	}
	if _, ok := got[bd]; ok {
		t.Error("GetBatch returned a blob whose content does not match its digest")
	}
	if _, err := c.Get(ctx, bd); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get of a corrupt small blob: %v, want cache.ErrNotFound", err)
	}
	if n := c.CorruptBlobs(); n != 2 {
		t.Errorf("CorruptBlobs = %d, want 2", n)
	}
}

func TestCorruptStreamedBlobFailsRead(t *testing.T) {
	for _, zstd := range []bool{false, true} {
		t.Run(fmt.Sprint("zstd=", zstd), func(t *testing.T) {
			f := &fakeServer{maxBatch: 64 << 10, zstd: zstd}
			c := open(t, "grpc://"+startFake(t, f), remote.Options{})
			ctx := context.Background()
			if _, err := c.Check(ctx); err != nil {
				t.Fatal(err)
			}
			good, gd := remotetest.Blob(t, 300<<10)
			f.put(gd, good)
			wrong, wd := remotetest.Blob(t, 300<<10)
			f.put(wd, sameSize(wrong))
			short, sd := remotetest.Blob(t, 300<<10)
			f.put(sd, short[:len(short)-1])
			long, ld := remotetest.Blob(t, 300<<10)
			f.put(ld, append(long, 'x'))

			if b, err := readAll(c, gd); err != nil || !bytes.Equal(b, good) {
				t.Fatalf("Get of a correct blob: %d bytes, %v", len(b), err)
			}
			for name, d := range map[string]cache.Digest{"wrong": wd, "short": sd, "long": ld} {
				if _, err := readAll(c, d); err == nil {
					t.Errorf("Get of a %s blob read to the end without error", name)
				}
			}
			if n := c.CorruptBlobs(); n != 3 {
				t.Errorf("CorruptBlobs = %d, want 3", n)
			}
		})
	}
}

func readAll(c *Cache, d cache.Digest) ([]byte, error) {
	rc, err := c.Get(context.Background(), d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestStreamedPutOfWrongContentIsNotCommitted(t *testing.T) {
	f := &fakeServer{maxBatch: 64 << 10}
	c := open(t, "grpc://"+startFake(t, f), remote.Options{})
	ctx := context.Background()
	if _, err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	b, d := remotetest.Blob(t, 3<<20)
	for name, content := range map[string][]byte{"wrong": sameSize(b), "short": b[:len(b)-1], "long": append(bytes.Clone(b), 1)} {
		if err := c.Put(ctx, d, bytes.NewReader(content)); err == nil {
			t.Errorf("Put of %s content succeeded", name)
		}
	}
	f.mu.Lock()
	finished := f.finished
	f.mu.Unlock()
	if _, ok := f.get(d.Hash); ok || finished != 0 {
		t.Errorf("the server stored a blob or got finish_write (%d times) for wrong content", finished)
	}
	if err := c.Put(ctx, d, bytes.NewReader(b)); err != nil {
		t.Fatalf("Put of the right content: %v", err)
	}
	if got, ok := f.get(d.Hash); !ok || !bytes.Equal(got, b) {
		t.Error("the server did not get the right content")
	}
}

func TestStallIsTransient(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("Unary", func(t *testing.T) {
		f := &fakeServer{stall: true}
		c := open(t, "grpc://"+startFake(t, f), remote.Options{Timeout: timeout})
		start := time.Now()
		_, err := c.FindMissing(context.Background(), []cache.Digest{cache.FromBytes([]byte("x"))})
		if !errors.Is(err, remote.ErrTransient) {
			t.Errorf("FindMissing from a stalled server: %v, want ErrTransient", err)
		}
		if el := time.Since(start); el > 10*timeout {
			t.Errorf("FindMissing took %v with a timeout of %v", el, timeout)
		}
	})
	t.Run("Stream", func(t *testing.T) {
		f := &fakeServer{stallRead: true, maxBatch: 64 << 10}
		c := open(t, "grpc://"+startFake(t, f), remote.Options{Timeout: timeout})
		b, d := remotetest.Blob(t, 300<<10)
		f.put(d, b)
		start := time.Now()
		_, err := readAll(c, d)
		if !errors.Is(err, remote.ErrTransient) {
			t.Errorf("reading from a server that stalls mid-stream: %v, want ErrTransient", err)
		}
		if el := time.Since(start); el > 10*timeout {
			t.Errorf("the read took %v with a timeout of %v", el, timeout)
		}
	})
}

func TestUnauthenticatedIsDenied(t *testing.T) {
	f := &fakeServer{token: "Bearer right-token"}
	addr := startFake(t, f)
	c := open(t, "grpc://"+addr, remote.Options{Headers: []remote.Header{{Name: "Authorization", Value: "Bearer wrong-token-123"}}})
	_, err := c.Check(context.Background())
	if !errors.Is(err, remote.ErrDenied) {
		t.Fatalf("Check with a wrong token: %v, want ErrDenied", err)
	}
	if strings.Contains(err.Error(), "wrong-token-123") {
		t.Errorf("the error shows the token: %v", err)
	}
	if !strings.Contains(err.Error(), "remote cache grpc://"+addr+": ") {
		t.Errorf("the error does not name the remote: %v", err)
	}
}

func TestHeadersAreMetadata(t *testing.T) {
	f := &fakeServer{token: "Bearer right-token", maxBatch: 64 << 10}
	c := open(t, "grpc://"+startFake(t, f), remote.Options{Headers: []remote.Header{
		{Name: "Authorization", Value: "Bearer right-token"}, {Name: "X-Hepbuild-Build", Value: "42"},
	}})
	ctx := context.Background()
	b, d := remotetest.Blob(t, 300<<10)
	if err := c.Put(ctx, d, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(c, d); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("Get: %d bytes, %v", len(got), err)
	}
	if _, err := c.FindMissing(ctx, []cache.Digest{d}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.metadata) != 4 {
		t.Fatalf("%d calls recorded, want GetCapabilities, Write, Read, FindMissing", len(f.metadata))
	}
	for i, md := range f.metadata {
		if got := md.Get("x-hepbuild-build"); len(got) != 1 || got[0] != "42" {
			t.Errorf("call %d: x-hepbuild-build = %q, want [42]", i, got)
		}
	}
}

func TestZstdWhenAnnounced(t *testing.T) {
	for _, announced := range []bool{false, true} {
		t.Run(fmt.Sprint("zstd=", announced), func(t *testing.T) {
			f := &fakeServer{zstd: announced, maxBatch: 64 << 10}
			c := open(t, "grpc://"+startFake(t, f)+"/main/inst", remote.Options{})
			ctx := context.Background()
			desc, err := c.Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]string{false: "REAPI 2.0–2.3", true: "REAPI 2.0–2.3, zstd"}[announced]; desc != want {
				t.Errorf("Check = %q, want %q", desc, want)
			}
			b, d := remotetest.Blob(t, 300<<10)
			if err := c.Put(ctx, d, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			if got, err := readAll(c, d); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("Get: %d bytes, %v", len(got), err)
			}
			kind := "blobs/"
			if announced {
				kind = "compressed-blobs/zstd/"
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.resources) != 2 {
				t.Fatalf("resources %q, want one Write and one Read", f.resources)
			}
			up, down := f.resources[0], f.resources[1]
			if !strings.HasPrefix(up, "main/inst/uploads/") || !strings.HasSuffix(up, "/"+kind+d.String()) || strings.Count(up, "/") != 5+strings.Count(kind, "/") {
				t.Errorf("Write resource %q, want main/inst/uploads/{uuid}/%s%v", up, kind, d)
			}
			if want := "main/inst/" + kind + d.String(); down != want {
				t.Errorf("Read resource %q, want %q", down, want)
			}
		})
	}
}

func TestFindMissingBatches(t *testing.T) {
	f := &fakeServer{}
	c := open(t, "grpc://"+startFake(t, f), remote.Options{})
	var ds []cache.Digest
	for i := range 25000 {
		ds = append(ds, cache.FromBytes(fmt.Appendf(nil, "blob %d", i)))
	}
	missing, err := c.FindMissing(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != len(ds) {
		t.Errorf("%d missing, want %d", len(missing), len(ds))
	}
	if f.findMissing > 3 {
		t.Errorf("%d FindMissingBlobs calls for %d digests, want at most 3", f.findMissing, len(ds))
	}
}
