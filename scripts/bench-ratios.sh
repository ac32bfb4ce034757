#!/bin/sh
# bench-ratios.sh [FILE]: the remote write 2.0 vs 1.0 lines of a benchmark
# run (go test -bench output, FILE or stdin): for every benchmark reporting
# x-v1 (BenchmarkRemoteWriteVersions/*, BenchmarkReceiveV2), the median
# over the run's -count of the 2.0 path's samples per CPU-second, the 1.0
# path's measured in the same run, and their ratio (target >= 1.0x), with
# every run's ratio.
awk '
/^Benchmark/ {
	r = ""; s = ""; v = ""
	for (i = 2; i < NF; i++) {
		if ($(i+1) == "x-v1") r = $i
		if ($(i+1) == "samples/cpu-s") s = $i
		if ($(i+1) == "v1-samples/cpu-s") v = $i
	}
	if (r == "") next
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in n)) order[++names] = name
	k = ++n[name]
	ratio[name, k] = r; rate[name, k] = s; v1[name, k] = v
}
function median(a, name, m,    i, j, t, x) {
	for (i = 1; i <= m; i++) x[i] = a[name, i] + 0
	for (i = 2; i <= m; i++) for (j = i; j > 1 && x[j-1] > x[j]; j--) { t = x[j]; x[j] = x[j-1]; x[j-1] = t }
	return m % 2 ? x[(m+1)/2] : (x[m/2] + x[m/2+1]) / 2
}
END {
	if (names == 0) exit
	print "remote write 2.0 vs 1.0 (same payload, same run; medians over -count; target x-v1 >= 1.0):"
	for (o = 1; o <= names; o++) {
		name = order[o]; m = n[name]; all = ""
		for (i = 1; i <= m; i++) all = all (i > 1 ? " " : "") ratio[name, i]
		printf "  %-46s 2.0 %10.0f  1.0 %10.0f samples/cpu-s  %6.3fx  (runs: %s)\n", name, median(rate, name, m), median(v1, name, m), median(ratio, name, m), all
	}
}' "${1:--}"
