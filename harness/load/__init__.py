"""``twinyard load``: Locust drives the world's demand, business flows are judged as load.

The harness side (simulators, the stack, the rest of the world in realtime) and Locust
(gevent) run in separate processes; they meet over the ERP simulator's public API (orders)
and a small HTTP feed of the harness (the plan, and business flows as they complete).
docs/load.md explains the design; this package imports nothing of Locust's, and the parts
the Locust process imports (``curve``) import nothing of asyncio's.
"""
