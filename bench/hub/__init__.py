"""The results hub: publish runs into a shared RESULTS store and build one leaderboard site from many runs.

* :mod:`colorbench.hub.submission` — the versioned submission schema (``submission.schema.json``), building
  submissions from a run directory, validation and migration;
* :mod:`colorbench.hub.store` — RESULTS (a folder, a git repository or any fsspec URI), content-addressed,
  atomic writes;
* :mod:`colorbench.hub.board` — tables per (protocol version, dataset), merged rows, seed statistics, conflicts,
  contamination;
* :mod:`colorbench.hub.site` — the static site (jinja2);
* :mod:`colorbench.hub.cli` — ``colorbench publish`` and ``colorbench leaderboard``.

It reads run directories (``colorbench.results.rundir``, ``colorbench.results.records``) and uses ``colorbench.reports`` for the
seed statistics and value formats; only the command line imports it.
"""
