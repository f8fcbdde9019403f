#!/bin/sh
# frontdoor-compare.sh [RUNS] [COUNT]
#
# Side-by-side SMTP submission: Debian's Postfix 3.7 (scripts/frontdoor-postfix.sh: a private instance on
# 127.0.0.1 with STARTTLS and AUTH through a private Dovecot auth service) against tanglemail's front door
# (tools/frontdoor-pair: alice and bob peered on 127.0.0.1) with proof of work off (tanglemail-bench)
# and real (tanglemail-dev: alice grinds her earlier mail while the load runs). One load generator,
# scripts/smtpload.py (Python smtplib, Nagle on, 10 threads, COUNT 4 KiB mails per run), alternating
# between the three servers in every mode, RUNS times. Prints one line per server and mode (msgs/s,
# acknowledged, failed, seconds, the machine's CPU ms per mail during the run); the medians and ratios
# are computed by the caller (see docs/benchmarks.md). The grinding pair is stopped (SIGSTOP) while the
# others are measured, so its proof of work burdens only its own figures, and every measurement waits
# until the tanglemail processes are idle (the recipient has filed the previous run's mail), so no
# server is measured while another one still works. Must run as root (Postfix); the system's own mail
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
	for p in $PIDS; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
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
	[ $net = tanglemail-bench ] && BENCHPID=$! || DEVPID=$!
done
# cpu PID: the process's user + system clock ticks so far.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# settle PID: wait (at most 30 s) until the process uses under 5% of a core over 200 ms.
settle() {
	n=0
	while [ $n -lt 150 ]; do
		a=$(cpu "$1"); sleep 0.2; b=$(cpu "$1")
		[ $((b - a)) -le 1 ] && return 0
		n=$((n + 1))
	done
	echo "# process $1 still busy after 30 s" >&2
}
for net in tanglemail-bench tanglemail-dev; do
	i=0
	until [ -s "$W/$net.json" ]; do
		i=$((i + 1)); [ $i -gt 600 ] && { echo "$net did not start" >&2; cat "$W/$net.log" >&2; exit 1; }
		sleep 0.1
	done
done
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
# busy: the machine's busy CPU ticks so far (user, nice, system, irq, softirq; /proc/stat).
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# measure NAME HOST PORT USER PASSWORD FROM TO MODE: one load run, printed as smtpload.py's line plus
# the machine's CPU milliseconds per mail during the run (the load generator's included, the same for
# every server; for pow=real the grinder's too).
measure() {
	name=$1; shift
	b0=$(busy)
	line=$(python3 "$HERE/smtpload.py" "$@" "$COUNT")
	b1=$(busy)
	printf '%-9s %s cpu-ms/mail %s\n' "$name" "$line" \
		"$(python3 -c "import sys; print(round((int(sys.argv[1]) - int(sys.argv[2])) * 1000 / int(sys.argv[3]) / $(getconf CLK_TCK), 2))" "$b1" "$b0" "$COUNT")"
}
tm() { j="$W/$1.json"; echo "$(field "$j" smtp | sed 's/:[0-9]*$//') $(field "$j" smtp | sed 's/.*://') $(field "$j" user) $(field "$j" password) $(field "$j" user) $(field "$j" to)"; }
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, runs=$RUNS count=$COUNT"
# Warm-up, not measured: COUNT mails to the grinding pair, so that it has earlier mail to grind from
# the first measurement on.
python3 "$HERE/smtpload.py" $(tm tanglemail-dev) kept "$COUNT" > /dev/null
for run in $(seq 1 "$RUNS"); do
	for mode in conn kept conn-tls kept-tls; do
		echo "run $run load $(cut -d' ' -f1-3 /proc/loadavg)"
		kill -STOP "$DEVPID"; settle "$BENCHPID"
		measure postfix 127.0.0.1 "$PFPORT" bench@postfix.test "$PFPASS" bench@postfix.test rcpt@example.org "$mode"
		settle "$BENCHPID"
		measure pow=off $(tm tanglemail-bench) "$mode"
		settle "$BENCHPID"; kill -CONT "$DEVPID"; sleep 1 # back to grinding
		a=$(cpu "$DEVPID"); sleep 0.5; b=$(cpu "$DEVPID")
		echo "# grinding pair before its run: $(( (b - a) * 200 / $(getconf CLK_TCK) ))% of one core"
		measure pow=real $(tm tanglemail-dev) "$mode"
	done
done
