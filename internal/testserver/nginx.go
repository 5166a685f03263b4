package testserver

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// NginxDAV is a running nginx serving a folder over WebDAV, which makes it
// a Bazel HTTP cache (GET/PUT/HEAD of /ac/ and /cas/).
type NginxDAV struct {
	*Process
	Dir  string // its configuration, logs and data
	Data string // the served folder
	Addr string // host:port
}

// StartNginxDAV starts nginx (installed by .ci/services/nginx.sh) on a
// free loopback port with PUT allowed, missing folders created on PUT, and
// PROPFIND answered (the dav_ext module), so it is a WebDAV server storage
// clients can list as well as a Bazel HTTP cache.
func StartNginxDAV(t testing.TB) *NginxDAV {
	t.Helper()
	return startNginx(t, "dav_methods PUT DELETE MKCOL COPY MOVE; dav_ext_methods PROPFIND OPTIONS; create_full_put_path on;")
}

// StartNginxStrictDAV starts nginx like StartNginxDAV but without
// create_full_put_path, as most WebDAV servers behave: a PUT into a
// missing folder fails (409) and clients must MKCOL the folders first.
func StartNginxStrictDAV(t testing.TB) *NginxDAV {
	t.Helper()
	return startNginx(t, "dav_methods PUT DELETE MKCOL COPY MOVE; dav_ext_methods PROPFIND OPTIONS;")
}

// StartNginxNoMoveDAV starts nginx like StartNginxDAV but refusing MOVE
// and COPY (405), for clients that fall back to writing in place.
func StartNginxNoMoveDAV(t testing.TB) *NginxDAV {
	t.Helper()
	return startNginx(t, "dav_methods PUT DELETE MKCOL; dav_ext_methods PROPFIND OPTIONS; create_full_put_path on;")
}

// StartNginxReadOnly starts nginx like StartNginxDAV but without WebDAV
// methods, so it answers PUT with 405: a cache that refuses writes.
func StartNginxReadOnly(t testing.TB) *NginxDAV {
	t.Helper()
	return startNginx(t, "")
}

func startNginx(t testing.TB, dav string) *NginxDAV {
	t.Helper()
	return startNginxServer(t, dav, "", "")
}

// StartNginxDAVTLS starts nginx like StartNginxDAV over HTTPS with the
// server certificate of files, demanding a client certificate signed by
// its authority (mutual TLS, as WLCG storage asks for an X.509 proxy).
func StartNginxDAVTLS(t testing.TB, files TLSFiles) *NginxDAV {
	t.Helper()
	// Workers (www-data) read the key when started as root: they must
	// reach the files. The key is throwaway, made for this test.
	for _, f := range []string{files.CA, files.ServerCert, files.ServerKey} {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
		for d := filepath.Dir(f); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			os.Chmod(d, 0o711)
		}
	}
	return startNginxServer(t, "dav_methods PUT DELETE MKCOL COPY MOVE; dav_ext_methods PROPFIND OPTIONS; create_full_put_path on;",
		" ssl", fmt.Sprintf("ssl_certificate %s; ssl_certificate_key %s; ssl_client_certificate %s; ssl_verify_client on; ssl_verify_depth 3;",
			files.ServerCert, files.ServerKey, files.CA))
}

// startNginxServer starts nginx with dav in its location, listen options
// and lines for the server block.
func startNginxServer(t testing.TB, dav, listenOpts, serverLines string) *NginxDAV {
	t.Helper()
	bin := Binary(t, "nginx", "nginx.sh")
	const module = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("the nginx WebDAV module is not installed: run .ci/services/nginx.sh")
	}
	dir := t.TempDir()
	data, tmp := filepath.Join(dir, "data"), filepath.Join(dir, "tmp")
	for _, d := range []string{data, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Workers run as www-data (when started as root): they must reach the
	// folders, and t.TempDir() makes them 0700.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	userLine := ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("www-data")
		if err != nil {
			t.Fatalf("nginx runs its workers as www-data, which does not exist: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{data, tmp} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		userLine = "user www-data;"
	}
	port := FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := fmt.Sprintf(`load_module %s;
daemon off; master_process on; worker_processes 1; %s
pid %s; error_log %s warn;
events { worker_connections 256; }
http {
  access_log %s; client_body_temp_path %s; client_max_body_size 0;
  proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;
  server {
    listen %s%s; root %s; %s
    location / { %s dav_access user:rw group:rw all:r; }
  }
}
`, module, userLine, filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"),
		filepath.Join(dir, "access.log"), tmp, tmp, tmp, tmp, tmp, addr, listenOpts, data, serverLines, dav)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	p := Start(t, dir, "nginx", cmd)
	WaitTCP(t, p, addr, 20*time.Second)
	return &NginxDAV{Process: p, Dir: dir, Data: data, Addr: addr}
}
