# report.awk: per-function guest instructions of `make profile`.
#
# Input (tab-separated, sorted by address, symbols before blocks at one address):
#   ADDR S MODULE NAME     a function's start (MODULE "vmlinux" or a module)
#   ADDR T C RUST          a translation block: instructions executed in it
#                          during the C run and during the Rust run
# Variables: ops (operations per run), unit, top (rows shown), csv (path).
# Blocks below the kernel's half of the address space are user space (the
# selftest, and its L2 guest in nested tests): one row.
$2 == "S" { mod = $3; sym = $4; next }
$2 == "T" {
	name = ($1 < "ffff800000000000") ? "[user space]" : (sym == "" ? "[unknown]" : sym)
	m = ($1 < "ffff800000000000") ? "user" : (sym == "" ? "?" : mod)
	key = name SUBSEP m
	c[key] += $3; r[key] += $4
	ct += $3; rt += $4
	mc[m] += $3; mr[m] += $4
}
END {
	printf "%-56s %-9s %12s %12s %9s\n", "function", "where", "C/" unit, "Rust/" unit, "Rust-C"
	n = 0
	for (k in c) keys[n++] = k
	# selection sort by max(C, Rust), descending: a few thousand keys
	for (i = 0; i < n; i++) {
		best = i
		for (j = i + 1; j < n; j++) {
			a = c[keys[j]] > r[keys[j]] ? c[keys[j]] : r[keys[j]]
			b = c[keys[best]] > r[keys[best]] ? c[keys[best]] : r[keys[best]]
			if (a > b) best = j
		}
		t = keys[i]; keys[i] = keys[best]; keys[best] = t
		if (i >= top - 1) break
	}
	for (i = 0; i < n && i < top; i++) {
		split(keys[i], p, SUBSEP)
		printf "%-56s %-9s %12.1f %12.1f %+9.1f\n", substr(p[1], 1, 56), p[2],
			c[keys[i]] / ops, r[keys[i]] / ops, (r[keys[i]] - c[keys[i]]) / ops
	}
	# every function, unsorted; names quoted (demangled ones have commas)
	print "function,where,c_insns,rust_insns,c_per_op,rust_per_op" > csv
	for (i = 0; i < n; i++) {
		split(keys[i], p, SUBSEP)
		gsub(/"/, "\"\"", p[1])
		printf "\"%s\",%s,%.0f,%.0f,%.2f,%.2f\n", p[1], p[2], c[keys[i]], r[keys[i]],
			c[keys[i]] / ops, r[keys[i]] / ops > csv
	}
	printf "%-56s %-9s %12s %12s %9s\n", "", "", "", "", ""
	for (m in mc)
		printf "%-56s %-9s %12.1f %12.1f %+9.1f\n", "total in " m, "", mc[m] / ops, mr[m] / ops, (mr[m] - mc[m]) / ops
	printf "%-56s %-9s %12.1f %12.1f %+9.1f\n", "total", "", ct / ops, rt / ops, (rt - ct) / ops
}
