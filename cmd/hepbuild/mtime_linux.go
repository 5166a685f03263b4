package main

import "syscall"

// mtimeOf is the modification time of st in nanoseconds.
func mtimeOf(st *syscall.Stat_t) int64 { return st.Mtim.Nano() }
