#!/usr/bin/env python3
"""Cost per million outbound messages, per scenario, in both capacity modes: every line from a
measured run of `send-load` on ministack (the sender, the webhook for the customer's message and
every status, all through the counting proxy), priced at us-east-1 list prices. Run by
scripts/cost, which starts ministack; prints the tables docs/cost.md shows.

What the runs measure: Lambda invocations and handler time (sender and webhook), SQS requests,
DynamoDB read and write units (DynamoDB's own ConsumedCapacity, failed conditional writes as
charged), the metrics documents the functions log (stdout, one EMF document per line), storage
left per message (bytes x months until each item expires) and the Graph request's size. The
usage aggregator's reads follow from the measured usage-index entries: each is read by 48 hourly
and 8 daily runs. KMS is a fixed monthly cost (see the page).
"""

import json
import os
import subprocess
import sys

# us-east-1 list prices, December 2026.
LAMBDA_REQUEST = 0.20e-6
LAMBDA_GB_S = 0.0000133334
FUNCTION_GB = 0.125
WRU, RRU = 0.625e-6, 0.125e-6
WCU_HOUR, RCU_HOUR, TARGET = 0.00065, 0.00013, 0.70
SQS_REQUEST = 0.40e-6
LOG_BYTE = 0.50e-9
STORAGE_GB_MONTH, PITR_GB_MONTH = 0.25, 0.20
EGRESS_GB = 0.09
# A query reads 4 KB per read unit, eventually consistent at half a unit.
QUERY_UNIT_BYTES = 4096
AGGREGATOR_READS = 48 + 8
# HTTP/TLS framing of one Graph request and of one webhook answer (headers), bytes.
HTTP_OVERHEAD = 600

GOALS = {"reply": (8.70, 5.00), "campaign": (9.50, 5.50)}

RUNS = [
    # (label, scenario, jobs, mps, pollers, batch)
    ("reply", "reply", 1000, 80, 4, 10),
    ("campaign", "campaign", 1000, 80, 4, 10),
    ("trickle", "trickle", 300, 80, 4, 1),
    ("campaign, 5 senders", "campaign", 1000, 1000, 5, 10),
    ("campaign, 20 senders", "campaign", 1000, 1000, 20, 10),
]


def run(binary, scenario, jobs, mps, pollers, batch):
    out = subprocess.run(
        [binary, "ministack", str(jobs), str(mps), str(pollers), str(batch), "--scenario", scenario],
        check=True, capture_output=True, text=True).stdout
    cost, report, logs = None, [], {}
    for line in out.splitlines():
        if line.startswith("cost-json "):
            cost = json.loads(line[len("cost-json "):])
        elif line.startswith("{") and '"_aws"' in line:
            fn = json.loads(line).get("Function", "?")
            logs[fn] = logs.get(fn, 0) + len(line) + 1
        else:
            report.append(line)
    if cost is None:
        sys.exit("send-load printed no cost-json line:\n" + "\n".join(report))
    cost["log_bytes"] = {fn: b / jobs for fn, b in logs.items()}
    cost["report"] = report
    return cost


def lines(c, provisioned):
    w = WCU_HOUR / 3600 / TARGET if provisioned else WRU
    r = RCU_HOUR / 3600 / TARGET if provisioned else RRU
    st = {k: c[k] for k in ("messages", "dedupe", "sessions", "control")}
    usage = st["messages"]
    aggregator = usage["usage_entries"] * AGGREGATOR_READS * 0.5 * usage["usage_entry_bytes"] / QUERY_UNIT_BYTES
    table_bm = sum(t["byte_months"] for t in st.values())
    index_bm = sum(t["index_byte_months"] for t in st.values())
    logs = sum(c["log_bytes"].values())
    egress = c["graph_request_bytes"] + HTTP_OVERHEAD + c["webhook_invocations"] * 200
    m = 1e6
    return [
        ("Lambda requests", f"sender {c['invocations']:.2f}, webhook {c['webhook_invocations']:.2f}",
         (c["invocations"] + c["webhook_invocations"]) * LAMBDA_REQUEST * m),
        ("Lambda duration, 128 MB", f"{c['handler_ms'] + c['webhook_ms']:.0f} ms "
         f"(sender {c['handler_ms']:.0f}, webhook {c['webhook_ms']:.0f})",
         (c["handler_ms"] + c["webhook_ms"]) / 1000 * FUNCTION_GB * LAMBDA_GB_S * m),
        ("DynamoDB writes", f"{c['write_units']:.2f} units: " + ", ".join(
            f"{t} {v['write']:.2f}" for t, v in c["tables"].items() if v["write"] > 0),
         c["write_units"] * w * m),
        ("DynamoDB reads", f"{c['read_units']:.2f} units by the functions, "
         f"{aggregator:.2f} by the usage aggregator", (c["read_units"] + aggregator) * r * m),
        ("DynamoDB storage", f"{table_bm:.0f} + {index_bm:.0f} (indexes) byte-months",
         (table_bm + index_bm) / 1e9 * STORAGE_GB_MONTH * m),
        ("Point-in-time recovery", f"{table_bm:.0f} byte-months of table data",
         table_bm / 1e9 * PITR_GB_MONTH * m),
        ("SQS", f"{c['sqs_requests']:.2f} requests", c["sqs_requests"] * SQS_REQUEST * m),
        ("CloudWatch Logs", f"{logs:.0f} bytes (" + ", ".join(
            f"{fn} {b:.0f}" for fn, b in sorted(c["log_bytes"].items())) + ")",
         logs * LOG_BYTE * m),
        ("Data transfer out", f"{egress:.0f} bytes (the Graph request, webhook answers)",
         egress / 1e9 * EGRESS_GB * m),
    ]


def main():
    binary = sys.argv[1]
    results = []
    for label, scenario, jobs, mps, pollers, batch in RUNS:
        print(f"running {label}: send-load ministack {jobs} {mps} {pollers} {batch} --scenario {scenario}",
              file=sys.stderr, flush=True)
        results.append((label, scenario, run(binary, scenario, jobs, mps, pollers, batch)))
    for label, scenario, c in results:
        if "senders" in label:
            continue
        od, pr = lines(c, False), lines(c, True)
        print(f"\n### {label}\n")
        print("| line | per message | on demand $/1M | provisioned $/1M |")
        print("|---|---|---:|---:|")
        for (name, what, a), (_, _, b) in zip(od, pr):
            print(f"| {name} | {what} | {a:.2f} | {b:.2f} |")
        ta, tb = sum(x for _, _, x in od), sum(x for _, _, x in pr)
        print(f"| **total** | | **{ta:.2f}** | **{tb:.2f}** |")
        if scenario in GOALS and label == scenario:
            ga, gb = GOALS[scenario]
            print(f"\ngoal: on demand ≤ {ga:.2f} ({'met' if ta <= ga else 'missed'}), "
                  f"provisioned ≤ {gb:.2f} ({'met' if tb <= gb else 'missed'})")
    print("\n### messaging-limit reservation retries\n")
    print("| run | retries per message | hottest key |")
    print("|---|---:|---|")
    for label, _, c in results:
        if label.startswith("campaign"):
            hot = next((l.strip() for l in c["report"] if "writes/s" in l and "TP#" not in l), "")
            print(f"| {label} | {c['reservation_retries']:.4f} | {hot} |")


if __name__ == "__main__":
    main()
