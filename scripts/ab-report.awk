# The report of scripts/cli-ab.sh and run-ab.sh: each line of the data is
# "ROUND SIDE US1 US2", SIDE a or b, times in microseconds. Prints each
# build's medians of the two columns (named col1 and col2) and the median
# of the per-round differences (b - a), in ms.
# Usage: awk -v a=BUILD_A -v b=BUILD_B -v col1=NAME -v col2=NAME -f ab-report.awk DATA
function median(v, n,    i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
	return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
}
{ x[$2, $1] = $3 / 1000; y[$2, $1] = $4 / 1000; if ($1 + 1 > n) n = $1 + 1 }
END {
	for (i = 0; i < n; i++) { xa[i+1] = x["a", i]; xb[i+1] = x["b", i]; ya[i+1] = y["a", i]; yb[i+1] = y["b", i]
		dx[i+1] = x["b", i] - x["a", i]; dy[i+1] = y["b", i] - y["a", i] }
	mxa = median(xa, n); mxb = median(xb, n); mya = median(ya, n); myb = median(yb, n)
	printf "%-8s %-40s %10s %10s\n", "", "build", col1, col2
	printf "%-8s %-40s %7.2f ms %7.2f ms\n", "first", a, mxa, mya
	printf "%-8s %-40s %7.2f ms %7.2f ms\n", "second", b, mxb, myb
	mdx = median(dx, n); mdy = median(dy, n)
	printf "%-8s %-40s %+7.2f ms %+7.2f ms\n", "paired", "median of (second - first), per round", mdx, mdy
	printf "%-8s %-40s %+6.1f %%  %+6.1f %%\n", "", "that over the first build's median", 100 * mdx / mxa, 100 * mdy / mya
}
