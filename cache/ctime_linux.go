package cache

import "syscall"

func ctimeNano(st *syscall.Stat_t) int64 { return st.Ctim.Nano() }

func mtimeNano(st *syscall.Stat_t) int64 { return st.Mtim.Nano() }
