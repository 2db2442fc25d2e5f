"""`canary-bot demo`: the product's story on a machine with no AWS or Slack account (entry: canary_demo.main)."""
