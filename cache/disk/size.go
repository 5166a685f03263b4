package disk

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseSize parses a size for --max-size: plain bytes ("1048576", "100B"),
// decimal units ("500MB", "50GB", "1.5TB") or binary ones ("512MiB", "2GiB").
// Units are case-insensitive; single-letter units ("50G") are refused as
// ambiguous.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("invalid size %q: negative (0 means nothing at all)", s)
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("invalid size %q: want a number and a unit, like 50GB", s)
	}
	b := math.Round(v * mult)
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return int64(b), nil
}

var ageUnits = map[byte]time.Duration{
	's': time.Second, 'm': time.Minute, 'h': time.Hour,
	'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour,
}

// ParseAge parses an age for --max-age: one or more numbers with a unit of
// s, m, h, d (24 hours) or w (7 days), e.g. "30d", "12h", "1d12h", "90m".
func ParseAge(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("invalid age %q: want a number and a unit, like 30d", s)
	}
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("invalid age %q: negative", s)
	}
	var total time.Duration
	for t != "" {
		i := 0
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
		if i == 0 || i == len(t) {
			return 0, fmt.Errorf("invalid age %q: want numbers with units s, m, h, d or w, like 30d", s)
		}
		unit, ok := ageUnits[t[i]]
		if !ok {
			return 0, fmt.Errorf("invalid age %q: unknown unit %q (use s, m, h, d or w)", s, t[i:i+1])
		}
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil || n > int64(math.MaxInt64/unit) || total+time.Duration(n)*unit < total {
			return 0, fmt.Errorf("invalid age %q: too large", s)
		}
		total += time.Duration(n) * unit
		t = t[i+1:]
	}
	return total, nil
}
