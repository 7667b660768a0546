"""Measures what the deployed functions log, per invocation, from their log groups in ministack.

CloudWatch Logs ingestion is billed per byte, so the cost per message needs the bytes each kind of
invocation writes. Lambda's own platform lines (START, END, REPORT) are counted apart: the
template's SystemLogLevel WARN keeps them out of CloudWatch in the cloud, while ministack writes
them anyway. Webhook invocations are told apart by their EMF document: an inbound message's POST
reports WindowHits, a status POST does not. Latency is the handler's own (WebhookLatency); the
platform duration ministack reports includes its process hand-off and is shown for comparison.

Usage: python scripts/log_volume.py STACK_NAME SINCE_EPOCH_MS
"""

import json
import re
import statistics
import sys

import boto3

PLATFORM = re.compile(r"^(START|END|REPORT) RequestId: ([0-9a-f-]+)")
DURATION = re.compile(r"\tDuration: ([0-9.]+) ms")


def invocations(logs, group, since_ms):
    """Yields (app lines, platform bytes, platform duration ms) per invocation, in order."""
    streams = logs.describe_log_streams(logGroupName=group).get("logStreams", [])
    for stream in streams:
        kwargs = {"logGroupName": group, "logStreamName": stream["logStreamName"],
                  "startTime": since_ms, "startFromHead": True}
        events = []
        while True:
            page = logs.get_log_events(**kwargs)
            events.extend(page["events"])
            token = page.get("nextForwardToken")
            if not page["events"] or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
        lines, platform, duration = [], 0, None
        for e in events:
            message = e["message"].rstrip("\n")
            m = PLATFORM.match(message)
            if not m:
                lines.append(message)
                continue
            platform += len(message.encode())
            if m.group(1) == "REPORT":
                d = DURATION.search(message)
                duration = float(d.group(1)) if d else None
                yield lines, platform, duration
                lines, platform, duration = [], 0, None


def emf(lines):
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            return doc
    return None


def kind(function, lines):
    doc = emf(lines)
    if function == "webhook":
        if doc is None or not doc.get("WebhookItems"):
            return "webhook: other (GET, refused POST)"
        return "webhook: inbound message POST" if "WindowHits" in doc else "webhook: status POST"
    return f"{function}: invocation"


def main() -> int:
    stack, since_ms = sys.argv[1], int(sys.argv[2])
    cfn = boto3.client("cloudformation")
    logs = boto3.client("logs")
    resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    functions = {
        r["LogicalResourceId"].removesuffix("Function").lower(): r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == "AWS::Lambda::Function"
    }
    lam = boto3.client("lambda")
    rows = {}
    for function in ("webhook", "sender"):
        # The stack's own log group, named in LoggingConfig (deploy_local.py checks it is set).
        config = lam.get_function_configuration(FunctionName=functions[function])
        group = config["LoggingConfig"]["LogGroup"]
        for lines, platform, duration in invocations(logs, group, since_ms):
            k = kind(function, lines)
            r = rows.setdefault(k, {"n": 0, "app": [], "platform": [], "duration": [], "latency": []})
            r["n"] += 1
            r["app"].append(sum(len(line.encode()) for line in lines))
            r["platform"].append(platform)
            if duration is not None:
                r["duration"].append(duration)
            doc = emf(lines)
            if doc and "WebhookLatency" in doc:
                r["latency"].append(doc["WebhookLatency"])
    print("  invocation kind                      n  app log bytes  platform bytes  handler ms  platform ms")
    for k in sorted(rows):
        r = rows[k]
        mean = lambda xs: f"{statistics.mean(xs):.1f}" if xs else "-"
        median = lambda xs: f"{statistics.median(xs):.1f}" if xs else "-"
        print(f"  {k:<35} {r['n']:>3}  {mean(r['app']):>13}  {mean(r['platform']):>14}"
              f"  {median(r['latency']):>10}  {median(r['duration']):>11}")
    print("  (means per invocation; ms are medians. Platform lines stay out of CloudWatch in the cloud:"
          " SystemLogLevel WARN.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
