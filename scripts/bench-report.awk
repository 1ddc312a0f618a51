# bench-report.awk: the benchmark's report lines -> CSV (to csv=FILE) and a
# table on stdout. Input lines: bench NAME COLUMN REP SECONDS PHASE...
# Per phase and column: median over the repetitions, and the spread as
# min-max; then the ratio of the medians, Rust/C (below 1: Rust faster).
# Phases whose C median is at least 50 ms (shorter ones are at the clock's
# resolution) also go to plot=FILE as "LABEL RATIO" lines, and their
# geometric mean is the table's last line. Entries named populate_<N>M
# also give their cost per 4 KiB page to scale=FILE.

function median(list,    n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
			t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
		}
	lo = a[1]; hi = a[n]; cnt = n
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

BEGIN { print "benchmark,phase,column,rep,seconds" >csv }

# The guest's serial console ends lines with CR LF.
{ sub(/\r$/, "") }

$1 == "bench" {
	phase = $6
	for (i = 7; i <= NF; i++) phase = phase " " $i
	# A phase a test reports twice in one run (access_tracking marks
	# memory idle twice) is two phases: the second is "... (2)".
	if (++occurrence[$2, $3, $4, phase] > 1)
		phase = phase " (" occurrence[$2, $3, $4, phase] ")"
	key = $2 SUBSEP phase
	if (!(key in seen)) { seen[key] = 1; order[n++] = key }
	v[key, $3] = v[key, $3] " " $5
	print $2 "," phase "," $3 "," $4 "," $5 >csv
}

END {
	if (n == 0) { print "no benchmark results"; exit 1 }
	printf "%-16s %-44s %22s %22s %7s\n", "benchmark", "phase (seconds)", "C median [min-max]", "Rust median [min-max]", "Rust/C"
	for (i = 0; i < n; i++) {
		key = order[i]
		split(key, kp, SUBSEP)
		c = r = "-"; ratio = "-"
		if ((key, "c") in v) { mc = median(v[key, "c"]); c = sprintf("%.3f [%.3f-%.3f]", mc, lo, hi); nc = cnt }
		if ((key, "rust") in v) { mr = median(v[key, "rust"]); r = sprintf("%.3f [%.3f-%.3f]", mr, lo, hi); nr = cnt }
		if (c != "-" && r != "-" && mc > 0) ratio = sprintf("%.2f", mr / mc)
		printf "%-16s %-44s %22s %22s %7s\n", kp[1], substr(kp[2], 1, 44), c, r, ratio
		if (ratio != "-" && mc >= 0.05) {
			label = kp[1] ": " kp[2]
			gsub(/[ \t]+$/, "", label)
			gsub(/"/, "", label)
			printf "\"%s\" %s\n", label, mr / mc >plot
			logsum += log(mr / mc); nmeasured++
		}
	}
	# Entries named populate_<N>M: guest time per 4 KiB page, in
	# microseconds, per column (8 ns per instruction under -icount).
	for (i = 0; i < n; i++) {
		key = order[i]
		split(key, kp, SUBSEP)
		if (kp[1] !~ /^populate_[0-9]+M$/ || kp[2] !~ /^Total guest execution time/)
			continue
		if (!scaling++)
			printf "%-16s %14s %14s %7s\n", "populate size", "C us/page", "Rust us/page", "Rust/C" >scale
		mb = substr(kp[1], 10) + 0
		pages = mb * 256
		pc = median(v[key, "c"]) / pages * 1e6
		pr = median(v[key, "rust"]) / pages * 1e6
		printf "%-16s %14.3f %14.3f %7.2f\n", mb " MiB", pc, pr, pr / pc >scale
	}
	if (nmeasured)
		printf "geometric mean of Rust/C over the %d phases with C >= 50 ms: %.3f\n", nmeasured, exp(logsum / nmeasured)
}
