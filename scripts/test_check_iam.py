"""Tests of check_iam.py against the real template, with a stack's resources and the proxy's
calls made up: a request each policy allows passes, and one its policy lacks is reported.

Run by scripts/test: python -m unittest scripts/test_check_iam.py
"""

import json
import pathlib
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import check_iam  # noqa: E402

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:st-WhatsAppSecret-AB12-x1y2z3"


class FakeCfn:
    """describe_stack_resources for a stack whose physical ids are readable."""

    def __init__(self, template):
        self.template = template

    def describe_stack_resources(self, StackName):
        out = []
        for logical, res in self.template["Resources"].items():
            kind = res["Type"]
            if kind == "AWS::SQS::Queue":
                pid = f"http://127.0.0.1:4566/000000000000/st-{logical}"
            elif kind == "AWS::SecretsManager::Secret":
                pid = "st-WhatsAppSecret-AB12"
            elif kind == "AWS::Serverless::Function":
                kind, pid = "AWS::Lambda::Function", f"st-{logical}"
            else:
                pid = f"st-{logical}"
            out.append({"LogicalResourceId": logical, "PhysicalResourceId": pid,
                        "ResourceType": kind})
        return {"StackResources": out}


def run(calls, template_text=None):
    template = check_iam.yaml.load(
        template_text or (check_iam.ROOT / "infra/template.yaml").read_text(),
        Loader=check_iam.CfnLoader)
    with tempfile.TemporaryDirectory() as d:
        calls_file = pathlib.Path(d, "calls.json")
        calls_file.write_text(json.dumps(calls))
        argv = ["check_iam.py", "st", str(calls_file)]
        env = {}
        if template_text is not None:
            path = pathlib.Path(d, "template.yaml")
            path.write_text(template_text)
            env["TEMPLATE"] = str(path)
        with mock.patch.object(sys, "argv", argv), mock.patch.dict("os.environ", env), \
                mock.patch.object(check_iam.boto3, "client", return_value=FakeCfn(template)), \
                mock.patch("builtins.print"):
            return check_iam.main()


def call(app, op, resource):
    return {"app": app, "op": op, "resource": resource, "count": 1}


# What the webhook and the sender do on the common path.
ALLOWED = [
    call("WebhookFunction", "DynamoDB_20120810.UpdateItem", "table:st-SessionsTable"),
    call("WebhookFunction", "DynamoDB_20120810.GetItem", "table:st-ContactsTable"),
    call("WebhookFunction", "AmazonSQS.SendMessage", "queue:st-InboundQueue"),
    call("WebhookFunction", "secretsmanager.GetSecretValue", f"secret:{SECRET_ARN}"),
    call("SenderFunction", "DynamoDB_20120810.Query", "table:st-MessagesTable/index/by_callback"),
    call("SenderFunction", "AmazonSQS.SendMessageBatch", "queue:st-OutcomesQueue"),
    call("SenderFunction", "AmazonSQS.ChangeMessageVisibility", "queue:st-SendQueue"),
    call("SenderFunction", "DynamoDB_20120810.TransactWriteItems",
         "table:st-SendControlTable#Put"),
]


class CheckIam(unittest.TestCase):
    def test_requests_the_policies_allow_pass(self):
        self.assertEqual(run(ALLOWED), 0)

    def test_a_request_outside_a_functions_policy_fails(self):
        # The webhook never deletes sessions; the sender may not write the messages table.
        for denied in (
            call("WebhookFunction", "DynamoDB_20120810.DeleteItem", "table:st-SessionsTable"),
            call("SenderFunction", "DynamoDB_20120810.UpdateItem", "table:st-MessagesTable"),
            call("SenderFunction", "DynamoDB_20120810.Query", "table:st-MessagesTable"),
            call("WebhookFunction", "AmazonSQS.SendMessage", "queue:st-SendQueue"),
            call("SenderFunction", "DynamoDB_20120810.TransactWriteItems",
                 "table:st-DedupeTable#Put"),
        ):
            with self.subTest(denied=denied):
                self.assertEqual(run(ALLOWED + [denied]), 1)

    def test_a_permission_taken_out_of_the_template_is_noticed(self):
        text = (check_iam.ROOT / "infra/template.yaml").read_text()
        statement = ("            - Effect: Allow\n"
                     "              Action: dynamodb:GetItem\n"
                     "              Resource: !GetAtt ContactsTable.Arn\n")
        self.assertIn(statement, text)
        self.assertEqual(run(ALLOWED, text.replace(statement, "", 1)), 1)


if __name__ == "__main__":
    unittest.main()
