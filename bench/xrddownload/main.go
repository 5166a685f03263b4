// Command xrddownload downloads one root:// file through hepbuild's
// XRootD storage client (Open and io.Copy), as remote data fills the
// cache, and prints the bytes, seconds and MB/s, for
// bench/remote-data-download.sh.
//
// Usage: xrddownload root://host:port//path OUT
package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/hepbuild/hepbuild/storage"
	"github.com/hepbuild/hepbuild/storage/xrootd"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "xrddownload:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: xrddownload root://host:port//path OUT")
	}
	u, err := url.Parse(args[0])
	if err != nil {
		return err
	}
	c, err := xrootd.Open(u, storage.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	out, err := os.Create(args[1])
	if err != nil {
		return err
	}
	defer out.Close()
	start := time.Now()
	rc, err := c.Open(context.Background(), args[0])
	if err != nil {
		return err
	}
	n, err := io.Copy(out, rc)
	rc.Close()
	if err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	s := time.Since(start).Seconds()
	fmt.Printf("%d bytes in %.3f s: %.1f MB/s\n", n, s, float64(n)/s/1e6)
	return nil
}
