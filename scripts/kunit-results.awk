# Turn KUnit's KTAP from a kernel log into the harness's result lines, one per
# test case of each suite:
#   ok|not ok|skip kunit SUITE.CASE [# detail]
# Log prefixes ("[    1.23] ") are dropped. No case at all is itself a
# failure, so that a module whose suites never ran cannot pass.
# Runs under busybox awk in the guest; scripts/test-scripts.sh tests it.
{ sub(/^\[[^]]*\] ?/, "") }
/^    # Subtest: / { suite = $3; next }
/^    (not )?ok [0-9]+ / {
	line = $0
	sub(/^    /, "", line)
	st = "ok"
	if (line ~ /^not ok/) { st = "not ok"; sub(/^not /, "", line) }
	sub(/^ok [0-9]+ /, "", line)
	name = line
	detail = ""
	i = index(line, " # ")
	if (i) {
		name = substr(line, 1, i - 1)
		detail = substr(line, i + 3)
	}
	if (detail ~ /^SKIP/) st = "skip"
	printf "%s kunit %s.%s%s\n", st, suite, name, (detail != "" ? " # " detail : "")
	n++
}
END { if (n == 0) print "not ok kunit # no KUnit results in the kernel log" }
