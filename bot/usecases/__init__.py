"""The use cases, one module per flow, each given the ports it needs (bot.composition wires them).

- starting: plan, confirm, cancel a canary (people)
- controlling: promote, roll back, weight, hold, resume, extend (people and buttons)
- automatic: what the soak, the watch and the alarm intake decide (the bot)
- queries: status, history, what a viewer may do (read only)
- recovery: revert a promotion, the emergency fallback (the seed's rollback procedures, at any time)
- locks: lock and unlock deploys of a function:alias (the checks themselves: bot.locks)

Every traffic change goes through writer.AliasWriter (an intent the reconciler drives to done); every word to
people goes through announcer.Announcer (once per event key).
"""
