#!/bin/sh
# frontdoor-compare.sh [RUNS] [COUNT]
#
# Side-by-side SMTP submission: Debian's Postfix 3.7 (scripts/frontdoor-postfix.sh: a private instance on
# 127.0.0.1 with STARTTLS and AUTH through a private Dovecot auth service) against tanglemail's front door
# (tools/frontdoor-pair: alice and bob peered on 127.0.0.1) with proof of work off (tanglemail-bench)
# and real (tanglemail-dev: alice grinds her earlier mail while the load runs). One load generator,
# scripts/smtpload.py (Python smtplib, Nagle on, 10 threads, COUNT 4 KiB mails per run), alternating
# between the three servers in every mode, RUNS times. Prints one line per run; the medians and ratios
# are computed by the caller (see docs/benchmarks.md). Must run as root (Postfix); the system's own mail
# services are never started or touched; everything listens on 127.0.0.1 under a temporary directory.
# For IMAP, the comparison with Dovecot is BenchmarkIMAPStress/server=dovecot (internal/imapserver).
set -eu
RUNS=${1:-5}
COUNT=${2:-500}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
W=$(mktemp -d /tmp/frontdoor.XXXXXX)
chmod 755 "$W"
PFPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PFPASS=postfix-bench
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	"$HERE/frontdoor-postfix.sh" "$W/postfix" "$PFPORT" "$PFPASS" stop
	sleep 1
	rm -rf "$W"
}
trap cleanup EXIT INT TERM
(cd "$ROOT" && go build -o "$W/frontdoor-pair" ./tools/frontdoor-pair)
"$HERE/frontdoor-postfix.sh" "$W/postfix" "$PFPORT" "$PFPASS" start >/dev/null
for net in tanglemail-bench tanglemail-dev; do
	"$W/frontdoor-pair" --dir "$W/$net" --network "$net" > "$W/$net.json" 2> "$W/$net.log" &
	PIDS="$PIDS $!"
done
for net in tanglemail-bench tanglemail-dev; do
	i=0
	until [ -s "$W/$net.json" ]; do
		i=$((i + 1)); [ $i -gt 600 ] && { echo "$net did not start" >&2; cat "$W/$net.log" >&2; exit 1; }
		sleep 0.1
	done
done
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, runs=$RUNS count=$COUNT"
for run in $(seq 1 "$RUNS"); do
	for mode in conn kept conn-tls kept-tls; do
		echo "run $run load $(cut -d' ' -f1-3 /proc/loadavg)"
		printf 'postfix   '; python3 "$HERE/smtpload.py" 127.0.0.1 "$PFPORT" bench@postfix.test "$PFPASS" \
			bench@postfix.test rcpt@example.org "$mode" "$COUNT"
		for net in tanglemail-bench tanglemail-dev; do
			j="$W/$net.json"
			smtp=$(field "$j" smtp)
			printf '%-9s ' "$([ $net = tanglemail-bench ] && echo pow=off || echo pow=real)"
			python3 "$HERE/smtpload.py" "${smtp%:*}" "${smtp##*:}" "$(field "$j" user)" "$(field "$j" password)" \
				"$(field "$j" user)" "$(field "$j" to)" "$mode" "$COUNT"
		done
	done
done
