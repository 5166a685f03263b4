package exec

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ParseResources parses a task's resources dict: cpu (a number), memory (a
// size such as "2GB"), walltime (a duration such as "1h"), tmp (a size).
func ParseResources(m map[string]string) (Resources, error) {
	var r Resources
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		switch k {
		case "cpu":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				return r, fmt.Errorf("cpu %q: want a positive number", v)
			}
			r.CPU = f
		case "memory":
			n, err := ParseBytes(v)
			if err != nil {
				return r, fmt.Errorf("memory: %v", err)
			}
			r.Memory = n
		case "tmp":
			n, err := ParseBytes(v)
			if err != nil {
				return r, fmt.Errorf("tmp: %v", err)
			}
			if n <= 0 {
				return r, fmt.Errorf("tmp %q: want a positive size such as \"4GB\"", v)
			}
			r.Tmp = n
		case "walltime":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return r, fmt.Errorf("walltime %q: want a duration such as \"1h\" or \"30m\"", v)
			}
			r.Walltime = d
		default:
			return r, fmt.Errorf("unknown resource %q: known are cpu, memory, tmp, walltime", k)
		}
	}
	return r, nil
}

// ParseBytes parses a size: "512", "2GB", "1.5G", "300MiB". Decimal units
// (KB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB, TiB) of 1024;
// single letters (K, M, G, T) are binary, as in batch systems.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as 2GB or 512MiB", s)
	}
	mult := map[string]float64{"": 1, "B": 1,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40,
		"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, unit)
	}
	return int64(f * mult), nil
}
