"""Tests of scripts/capacity.py: what it generates and what its check catches."""

import importlib.util
import unittest
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "capacity", Path(__file__).resolve().parent / "capacity.py")
capacity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(capacity)

THROUGHPUT = """      ProvisionedThroughput: !If
        - Provisioned
        - ReadCapacityUnits: !Ref ProvisionedMinReadCapacity
          WriteCapacityUnits: !Ref ProvisionedMinWriteCapacity
        - !Ref AWS::NoValue
"""

TEMPLATE = f"""Resources:
  PlainTable:
    # a comment
    Type: AWS::DynamoDB::Table
    Properties:
      {capacity.BILLING}
{THROUGHPUT}
  IndexedTable:
    Type: AWS::DynamoDB::Table
    Properties:
      {capacity.BILLING}
{THROUGHPUT}      GlobalSecondaryIndexes:
        - IndexName: by_day
          KeySchema: []
  {THROUGHPUT.strip()}
  Queue:
    Type: AWS::SQS::Queue
{capacity.BEGIN}{capacity.END}"""


class Capacity(unittest.TestCase):
    def test_every_table_and_index_gets_a_read_and_a_write_target_with_a_policy(self):
        found = capacity.tables(TEMPLATE)
        self.assertEqual([(t, i) for t, i, _ in found],
                         [("PlainTable", []), ("IndexedTable", ["by_day"])])
        block = capacity.generated(TEMPLATE)
        self.assertEqual(block.count("AWS::ApplicationAutoScaling::ScalableTarget"), 6)
        self.assertEqual(block.count("AWS::ApplicationAutoScaling::ScalingPolicy"), 6)
        self.assertIn('ResourceId: !Sub "table/${IndexedTable}/index/by_day"', block)
        self.assertIn("ScalableDimension: dynamodb:index:WriteCapacityUnits", block)
        self.assertEqual(block.count("Condition: Provisioned"), 12)

    def test_a_table_billed_on_demand_whatever_the_mode_is_caught(self):
        broken = TEMPLATE.replace(capacity.BILLING, "BillingMode: PAY_PER_REQUEST", 1)
        self.assertEqual(capacity.problems(broken),
                         ["PlainTable: BillingMode does not follow CapacityMode "
                          f"({capacity.BILLING})"])

    def test_an_index_without_its_throughput_is_caught(self):
        head, tail = TEMPLATE.rsplit("  " + THROUGHPUT.strip(), 1)
        broken = head + tail
        self.assertEqual(len(capacity.problems(broken)), 1)
        self.assertIn("IndexedTable", capacity.problems(broken)[0])


if __name__ == "__main__":
    unittest.main()
