"""Deploys infra/template.yaml into the local ministack as a CloudFormation stack.

The same template as the cloud: ministack expands the SAM transform itself (aws-sam-translator
is in its venv). Each function's code is the host (x86-64) build of its binary, zipped as
`bootstrap` and uploaded to ministack's S3, in place of the `CodeUri` that `sam build` would
package. Afterwards it re-applies what ministack's CloudFormation ignores on create (DynamoDB
TTL), checks that every function got its code and logs to a log group of the stack, and prints
the stack outputs as JSON.

Lambda's advanced logging controls reach a function as AWS_LAMBDA_LOG_FORMAT and
AWS_LAMBDA_LOG_LEVEL, which ministack stores but does not set: they are added to each function's
environment from its LoggingConfig, so local functions log exactly as they do in the cloud (the
local run measures their log volume). Each function also gets AWS_SDK_UA_APP_ID, its logical id,
which its AWS SDK puts in every request's user agent: the local run's counting proxy attributes
requests to functions by it, to check them against the template's policies (check_iam.py).

Usage: python scripts/deploy_local.py STACK_NAME BINARY_DIR [KEY=VALUE ...]   (template parameters)
"""

import hashlib
import io
import json
import os
import pathlib
import sys
import time
import zipfile

import boto3
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !GetAtt, ...) as plain data."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def main() -> int:
    stack = sys.argv[1]
    bin_dir = pathlib.Path(sys.argv[2])
    params = [
        {"ParameterKey": k, "ParameterValue": v}
        for k, v in (a.split("=", 1) for a in sys.argv[3:])
    ]
    params.append({"ParameterKey": "LocalEndpointUrl", "ParameterValue": os.environ["AWS_ENDPOINT_URL"]})
    template = yaml.load((ROOT / "infra/template.yaml").read_text(), Loader=CfnLoader)

    # Function code: the host build of each binary, as `bootstrap`.
    s3 = boto3.client("s3")
    bucket = f"{stack}-artifacts"
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as e:
        if "BucketAlready" not in str(e):
            raise
    functions = []
    global_logging = template.get("Globals", {}).get("Function", {}).get("LoggingConfig", {})
    for logical, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        logging = {**global_logging, **res["Properties"].get("LoggingConfig", {})}
        variables = res["Properties"].setdefault("Environment", {}).setdefault("Variables", {})
        variables["AWS_SDK_UA_APP_ID"] = logical
        if logging.get("LogFormat") == "JSON":
            variables["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
            variables["AWS_LAMBDA_LOG_LEVEL"] = logging.get("ApplicationLogLevel", "INFO")
        binary = res["Metadata"]["BuildProperties"]["Binary"]
        data = (bin_dir / binary).read_bytes()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o755 << 16
            z.writestr(info, data)
        key = f"{binary}-{hashlib.sha256(data).hexdigest()[:16]}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        res["Properties"]["CodeUri"] = {"Bucket": bucket, "Key": key}
        functions.append(logical)
    # Over CloudFormation's 51,200-byte TemplateBody limit: from S3 by URL, as `sam deploy` does.
    body = json.dumps(template)
    template_key = f"template-{hashlib.sha256(body.encode()).hexdigest()[:16]}.json"
    s3.put_object(Bucket=bucket, Key=template_key, Body=body.encode())
    template_url = f"{os.environ['AWS_ENDPOINT_URL']}/{bucket}/{template_key}"
    cfn = boto3.client("cloudformation")
    exists = True
    try:
        cfn.describe_stacks(StackName=stack)
    except cfn.exceptions.ClientError:
        exists = False
    caps = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND", "CAPABILITY_NAMED_IAM"]
    if exists:
        try:
            cfn.update_stack(StackName=stack, TemplateURL=template_url, Parameters=params, Capabilities=caps)
        except cfn.exceptions.ClientError as e:
            if "No updates" not in str(e):
                raise
    else:
        cfn.create_stack(StackName=stack, TemplateURL=template_url, Parameters=params, Capabilities=caps)

    deadline = time.time() + 120
    while True:
        s = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = s["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            break
        if "FAILED" in status or "ROLLBACK" in status or time.time() > deadline:
            events = cfn.describe_stack_events(StackName=stack)["StackEvents"][:10]
            for ev in events:
                print(ev.get("LogicalResourceId"), ev.get("ResourceStatus"), ev.get("ResourceStatusReason", ""), file=sys.stderr)
            print(f"stack {stack}: {status}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])}

    # ministack's CloudFormation ignores TimeToLiveSpecification on create: re-apply it from the
    # template so local tables expire items like the cloud's.
    ddb = boto3.client("dynamodb")
    resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    for logical, res in template["Resources"].items():
        ttl = res.get("Properties", {}).get("TimeToLiveSpecification")
        if res["Type"] != "AWS::DynamoDB::Table" or not ttl:
            continue
        table = physical[logical]
        current = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") != "ENABLED":
            ddb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
    # ministack's CloudFormation stores numbers that come from a !Ref to a parameter as strings
    # (CloudFormation converts them); its SQS poller then cannot compare them. Re-apply the
    # sender's concurrency settings as integers.
    lam = boto3.client("lambda")
    for logical in functions:
        name = physical[logical]
        for esm in lam.list_event_source_mappings(FunctionName=name).get("EventSourceMappings", []):
            # (boto3 hands the value back already parsed, so re-apply it whatever its type.)
            limit = (esm.get("ScalingConfig") or {}).get("MaximumConcurrency")
            if limit is not None:
                lam.update_event_source_mapping(UUID=esm["UUID"], ScalingConfig={"MaximumConcurrency": int(limit)})
        reserved = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        if reserved is not None:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=int(reserved))
    # A wrong code key still deploys locally and answers with a mock: check every function's code.
    # And its log group: one the stack made (with its retention and key), not one Lambda would
    # make on the first write, which in the cloud keeps logs forever.
    stack_groups = {r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::Logs::LogGroup"}
    for logical in functions:
        conf = lam.get_function(FunctionName=physical[logical])["Configuration"]
        if not conf.get("CodeSize"):
            print(f"function {logical} has no code", file=sys.stderr)
            return 1
        group = (conf.get("LoggingConfig") or {}).get("LogGroup")
        if group not in stack_groups:
            print(f"function {logical} logs to {group!r}, not to a log group of the stack", file=sys.stderr)
            return 1
    problem = check_dashboard(stack, physical, dead_letter_queues(template))
    if problem:
        print(f"dashboard: {problem}", file=sys.stderr)
        return 1
    print(json.dumps(outputs, indent=2, sort_keys=True))
    return 0


def dead_letter_queues(template):
    """The logical ids of the queues some queue's redrive policy names as its dead-letter
    queue, read from the template (the ops crate's test holds its dashboard to the same list)."""
    out = set()
    for res in template["Resources"].values():
        target = res.get("Properties", {}).get("RedrivePolicy", {}).get("deadLetterTargetArn")
        if isinstance(target, dict) and "Fn::GetAtt" in target:
            out.add(target["Fn::GetAtt"][0])
    return sorted(out)


def check_dashboard(stack, physical, dlqs):
    """The stack's dashboard exists under the stack's name, its body is JSON with every !Sub
    reference resolved, and it plots the stack's own dead-letter queues and functions."""
    cw = boto3.client("cloudwatch")
    try:
        body = cw.get_dashboard(DashboardName=stack)["DashboardBody"]
    except cw.exceptions.ClientError as e:
        return f"not deployed as {stack!r}: {e}"
    if "${" in body:
        return "a !Sub reference was left unresolved"
    widgets = json.loads(body)["widgets"]
    values = {
        part
        for w in widgets
        for line in w["properties"]["metrics"]
        for part in line
        if isinstance(part, str)
    }
    if not dlqs:
        return "the template names no dead-letter queue"
    for logical in dlqs:
        name = physical[logical].rsplit("/", 1)[-1]
        if name not in values:
            return f"{logical} ({name}) is not plotted"
    for logical in ("WebhookFunction", "SenderFunction", "QualityPollerFunction"):
        if physical[logical] not in values:
            return f"{logical} ({physical[logical]}) is not plotted"
    return None


if __name__ == "__main__":
    sys.exit(main())
