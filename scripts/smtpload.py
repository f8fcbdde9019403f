#!/usr/bin/env python3
"""smtpload.py HOST PORT USER PASSWORD FROM TO MODE COUNT [THREADS]

SMTP submission load generator for scripts/frontdoor-compare.sh (issue 16). THREADS (default 10) client
threads submit COUNT 4 KiB mails in total with Python's smtplib, which leaves Nagle's algorithm on, as
mail clients do. MODE is one of
  conn      a new connection + EHLO + AUTH PLAIN per mail, no TLS
  kept      one connection per thread (AUTH once), then MAIL/RCPT/DATA per mail, no TLS
  conn-tls  a new connection + STARTTLS + AUTH PLAIN per mail
  kept-tls  one STARTTLS connection per thread, AUTH once
Prints one line: MODE msgs/s acknowledged failed seconds. Certificates are not verified (self-signed
servers on 127.0.0.1)."""
import smtplib, ssl, sys, threading, time

host, port, user, password, frm, to, mode, count = sys.argv[1:9]
port, count = int(port), int(count)
threads = int(sys.argv[9]) if len(sys.argv) > 9 else 10
tls = mode.endswith("-tls")
kept = mode.startswith("kept")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def message(i):
    head = (f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: load {i}\r\n"
            f"Message-ID: <load.{time.time_ns()}.{i}@load.test>\r\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n\r\n")
    body = ("The quick brown fox jumps over the lazy dog " * 2 + "\r\n") * 45
    return (head + body)[:4096]

def connect():
    s = smtplib.SMTP(host, port, timeout=60)
    s.ehlo("load.test")
    if tls:
        s.starttls(context=ctx)
        s.ehlo("load.test")
    s.login(user, password)
    return s

lock = threading.Lock()
next_i = [0]
ok = [0]
failed = [0]

def take():
    with lock:
        if next_i[0] >= count:
            return None
        next_i[0] += 1
        return next_i[0]

def worker():
    s = None
    while True:
        i = take()
        if i is None:
            break
        try:
            if s is None:
                s = connect()
            s.sendmail(frm, [to], message(i))
            with lock:
                ok[0] += 1
            if not kept:
                s.quit()
                s = None
        except Exception as e:
            with lock:
                failed[0] += 1
            print("error:", repr(e), file=sys.stderr)
            s = None
    if s is not None:
        try:
            s.quit()
        except Exception:
            pass

start = time.monotonic()
ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
took = time.monotonic() - start
print(f"{mode} {ok[0] / took:.1f} {ok[0]} {failed[0]} {took:.2f}")
