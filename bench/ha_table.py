#!/usr/bin/env python3
"""Reads vfe-bench-ha's JSON on stdin, prints it again (one line) and a table
on stdout, with the goals of issue 9 checked.   vfe-bench-ha | bench/ha_table.py
Exit status 1 if the bench reported an error (a goal missed is only marked)."""
import json
import sys

GOAL_RESUME_MS = 50.0   # kill -9 -> restarted daemon has taken every VF over (includes process start)


def row(cells, widths):
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def main():
    try:
        data = json.load(sys.stdin)
    except ValueError as e:
        print("ha_table.py: no JSON from vfe-bench-ha (%s)" % e, file=sys.stderr)
        return 2
    print(json.dumps(data))
    failed = False
    r = data.get("resume")
    if r:
        print("\nresume after kill -9: %s VFs with front-ends attached and rings running, %s restarts, "
              "round trips on %s VF pairs (ms from the restart)" % (r.get("vfs"), r.get("restarts"),
                                                                     r.get("sample_pairs")))
        w = (34, 8, 8, 8, 8)
        print(row(("", "min", "p50", "p99", "max"), w))
        for key, label in (("daemon_reported_ms", "take-over inside the daemon"),
                           ("log_line_ms", "\"HA: took over\" in the log"),
                           ("rpc_up_ms", "RPC answers"),
                           ("all_rings_running_ms", "stats: every VF's rings running"),
                           ("frames_round_trip_ms", "frames round-trip on the samples"),
                           ("daemon_cpu_ms", "CPU of the daemon up to the line"),
                           ("sim_cpu_ms", "CPU of the sim meanwhile")):
            d = r.get(key) or {}
            print(row((label, *("%.1f" % d[k] if k in d else "-" for k in ("min", "p50", "p99", "max"))), w))
        for p in ("p50", "p99"):
            lm = (r.get("log_line_ms") or {}).get(p)
            if lm is not None:
                print("goal <= %.0f ms (%s, kill -9 -> log line, process start included): %s" % (
                    GOAL_RESUME_MS, p, "met (%.1f ms)" % lm if lm <= GOAL_RESUME_MS else "NOT met (%.1f ms)" % lm))
        print("resumed %s VFs, reset %s; sim: %s resets, %s vfio-user clients left" % (
            r.get("resumed_vfs"), r.get("reset_vfs"), r.get("sim_resets"), r.get("sim_client_disconnects")))
        failed |= "error" in r
    mem = data.get("memory") or []
    if mem:
        base = next((m for m in mem if m.get("vfs") == 0 and "error" not in m), None)
        print("\nvfe-vhostd-ha memory and fds (per VF: minus the 0-VF baseline)")
        w = (6, 10, 10, 12, 9, 8, 11, 10)
        print(row(("VFs", "front-ends", "RSS KiB", "KiB per VF", "open fds", "ha.fds", "fds per VF", "bytes"), w))
        for m in mem:
            if "error" in m:
                print(row((m.get("vfs"), "error: " + m["error"]), w[:2]))
                failed = True
                continue
            n = m["vfs"]
            per = fds = "-"
            if base and n:
                per = "%.1f" % ((m["ha_rss_kib"] - base["ha_rss_kib"]) / n)
                fds = "%.1f" % ((m["health_ha_fds"] - base["health_ha_fds"]) / n)
            print(row((n, "yes" if m.get("front_ends") else "no", m["ha_rss_kib"], per, m["ha_open_fds"],
                       m["health_ha_fds"], fds, m["health_ha_bytes"]), w))
    storm = data.get("storm") or []
    if storm:
        print("\nvhost-user message storms of one front-end (1 queue pair)")
        w = (18, 5, 7, 9, 8, 8, 12, 14)
        print(row(("storm", "--ha", "cycles", "messages", "msgs/s", "us/msg", "deposits/msg", "deposit_us_avg"), w))
        runs = {}
        for s in storm:
            kind = s.get("storm", "?")
            if "error" in s:
                print(row((kind, "yes" if s.get("ha") else "no", "error: " + s["error"]), w[:3]))
                failed = True
                continue
            runs[(kind, s["ha"])] = s
            print(row((kind, "yes" if s["ha"] else "no", s["cycles"], s["messages"], "%.0f" % s["messages_per_s"],
                       "%.1f" % s["us_per_message"], "%.2f" % s["deposits_per_message"] if s["ha"] else "-",
                       s.get("deposit_us_avg", "-")), w))
        for kind in dict.fromkeys(k for k, _ in runs):
            off, on = runs.get((kind, False)), runs.get((kind, True))
            if off and on:
                print("%s: HA costs %.1f us per message (%.0f%% fewer messages/s)" % (
                    kind, on["us_per_message"] - off["us_per_message"],
                    100 * (1 - on["messages_per_s"] / off["messages_per_s"])))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
