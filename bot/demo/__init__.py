"""`canary-bot demo`: the product's story on a machine with no AWS or Slack account."""

from bot.demo.main import demo_main

__all__ = ["demo_main"]
