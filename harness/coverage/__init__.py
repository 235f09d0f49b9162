"""The fault-coverage map: which fault x situation cells a scenario library really plays.

An incident library is only as good as the pairs it exercises. ``twinyard coverage`` derives
every cell a library should cover and, from the journals of real runs, which scenario
exercised each one:

- ``cells``: the cell families, their columns, and the universe of rows (the write routes a
  stack calls, the events it receives) from consumer pacts and from the runs themselves;
- ``routes``: a called path normalised to its OpenAPI path template;
- ``exercised``: what one run's journal (and final state) shows was exercised;
- ``stages``: at which stage of the order each cancellation reached the stack;
- ``runs``: run folders, read back or played (one ``twinyard run`` child per scenario);
- ``mapping``: universe and evidence put together, as data (``--format json``);
- ``render``: the map as terminal tables.

docs/coverage.md says what each family means and how each cell is judged.
"""
