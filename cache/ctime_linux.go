package cache

import "syscall"

// CtimeNano is the inode change time of st in nanoseconds.
func CtimeNano(st *syscall.Stat_t) int64 { return st.Ctim.Nano() }

func mtimeNano(st *syscall.Stat_t) int64 { return st.Mtim.Nano() }
