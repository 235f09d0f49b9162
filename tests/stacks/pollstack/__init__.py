"""pollstack: an integration middleware that never takes a webhook.

On a schedule it asks each vendor what changed (the ERP's item and transfer events and its
orders change list, the WMS, TMS and carrier events feeds), keeps a cursor per feed, and pushes
what it learned to the other systems.
Written from README.md, docs/*.md and contracts/openapi/*.yaml only (tests/stacks/README.md).
"""
