"""Checks every AWS request the deployed functions made against their policies in the template.

ministack stores IAM but does not enforce it, so a policy that is too narrow would only fail in
the cloud. The local run's counting proxy records, per request, the calling function (its SDK app
id, AWS_SDK_UA_APP_ID, which deploy_local.py sets to the function's logical id), the operation
and the tables, indexes, queues or secrets it names. This script resolves each function's
`Policies` (inline statements and the SAM policy templates the template uses) to the same
resource names and reports any request no statement allows. Exits 1 if there is one.

Usage: python scripts/check_iam.py STACK_NAME CALLS_JSON [KEY=VALUE ...]   (template parameters)
CALLS_JSON is what the proxy's `/_calls` answered; TEMPLATE overrides infra/template.yaml (to see
the check fail on a policy with a permission taken out).
"""

import json
import os
import pathlib
import re
import sys

import boto3
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from deploy_local import ROOT, CfnLoader  # noqa: E402

# SAM policy templates in use, as the actions they grant on their one resource.
SAM_TEMPLATES = {
    "SQSPollerPolicy": ("QueueName", [
        "sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch", "sqs:DeleteMessage",
        "sqs:DeleteMessageBatch", "sqs:GetQueueAttributes", "sqs:ReceiveMessage",
    ]),
}
# Batch APIs IAM authorises as their single-message action.
SQS_AS = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
          "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
TRANSACT_AS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
               "ConditionCheck": "ConditionCheckItem"}


def secret(ident):
    """`secret:<name>` for a secret's name or ARN (whose name ends in a random `-xxxxxx`)."""
    if ident.startswith("arn:"):
        ident = re.sub(r"-[A-Za-z0-9]{6}$", "", ident.split(":secret:", 1)[1])
    return f"secret:{ident}"


class Resolver:
    def __init__(self, template, physical, params):
        self.res = template["Resources"]
        self.physical = physical
        self.params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        self.params.update(params)
        self.conditions = template.get("Conditions", {})

    def condition(self, expr):
        if isinstance(expr, str):
            return self.condition(self.conditions[expr])
        (fn, arg), = expr.items()
        if fn == "Fn::Equals":
            return self.value(arg[0]) == self.value(arg[1])
        if fn == "Fn::Not":
            return not self.condition(arg[0])
        if fn == "Condition":
            return self.condition(arg)
        raise ValueError(f"condition {fn}")

    def value(self, expr):
        if isinstance(expr, dict) and "Ref" in expr:
            return self.params.get(expr["Ref"], "")
        return expr

    def resources(self, expr):
        """Canonical names (`table:..`, `queue:..`, `secret:..`) an expression stands for."""
        if isinstance(expr, list):
            return [r for e in expr for r in self.resources(e)]
        if isinstance(expr, str):
            return [secret(expr) if expr.startswith("arn:aws:secretsmanager:") else expr]
        (fn, arg), = expr.items()
        if fn == "Fn::If":
            return self.resources(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Ref":
            if arg == "AWS::NoValue":
                return []
            if arg in self.params:
                return self.resources(self.params[arg]) if self.params[arg] else []
            return [self.named(arg)]
        if fn == "Fn::GetAtt":
            return [self.named(arg[0])]
        if fn == "Fn::Sub":
            m = re.fullmatch(r"\$\{(\w+)\.Arn\}(/.*)", arg)
            return [self.named(m.group(1)) + m.group(2)] if m else [arg]
        raise ValueError(f"resource {fn}")

    def named(self, logical):
        kind = self.res[logical]["Type"]
        pid = self.physical[logical]
        if kind == "AWS::DynamoDB::Table":
            return f"table:{pid}"
        if kind == "AWS::SQS::Queue":
            return f"queue:{pid.rstrip('/').rsplit('/', 1)[-1]}"
        if kind == "AWS::SecretsManager::Secret":
            return secret(pid)
        return f"{kind}:{pid}"


def grants(resolver, function):
    """(action, resource) pairs a function's policies allow."""
    out = set()
    for policy in function["Properties"].get("Policies", []):
        if not isinstance(policy, dict):
            continue
        for name, (key, actions) in SAM_TEMPLATES.items():
            if name in policy:
                for r in resolver.resources(policy[name][key]):
                    out.update((a, r) for a in actions)
        for st in policy.get("Statement", []):
            if st.get("Effect") != "Allow":
                continue
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            for r in resolver.resources(st["Resource"]):
                out.update((a, r) for a in actions)
    return out


def action_of(op, resource):
    service, name = op.split(".", 1)
    if service.startswith("DynamoDB"):
        if name == "TransactWriteItems" and "#" in resource:
            resource, kind = resource.rsplit("#", 1)
            return f"dynamodb:{TRANSACT_AS[kind]}", resource
        return f"dynamodb:{name}", resource
    if service == "AmazonSQS":
        return f"sqs:{SQS_AS.get(name, name)}", resource
    if service == "secretsmanager":
        return f"secretsmanager:{name}", secret(resource.removeprefix("secret:"))
    return None, resource


def main() -> int:
    stack, calls_file = sys.argv[1], sys.argv[2]
    params = dict(a.split("=", 1) for a in sys.argv[3:])
    template_path = pathlib.Path(os.environ.get("TEMPLATE", ROOT / "infra/template.yaml"))
    template = yaml.load(template_path.read_text(), Loader=CfnLoader)
    cfn = boto3.client("cloudformation")
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}
    resolver = Resolver(template, physical, params)
    functions = {k: v for k, v in template["Resources"].items()
                 if v["Type"] == "AWS::Serverless::Function"}
    allowed = {name: grants(resolver, f) for name, f in functions.items()}
    calls = json.loads(pathlib.Path(calls_file).read_text())
    checked, denied, unchecked = 0, [], []
    for c in calls:
        app, op, resource = c["app"], c["op"], c["resource"]
        action, resource = action_of(op, resource) if "." in op else (None, resource)
        if app not in allowed or action is None or resource == "-":
            unchecked.append(c)
            continue
        checked += c["count"]
        if (action, resource) not in allowed[app]:
            denied.append((app, action, resource, c["count"]))
    apps = sorted({c["app"] for c in calls if c["app"] in allowed})
    print(f"  {checked} requests by {len(apps)} functions ({', '.join(apps)}) checked against "
          f"their policies in {template_path.name}: {len(denied)} not allowed")
    for app, action, resource, n in denied:
        print(f"    NOT ALLOWED: {app} {action} on {resource} ({n}x)")
    for c in unchecked:
        print(f"    not checked: {c['app']} {c['op']} on {c['resource']} ({c['count']}x)")
    return 1 if denied else 0


if __name__ == "__main__":
    sys.exit(main())
