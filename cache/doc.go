// Package cache defines content digests and the content-addressed store (CAS)
// and action cache (AC) interfaces that executors use. Implementations live in
// sub-packages: cache/disk, and one package per remote protocol.
package cache
