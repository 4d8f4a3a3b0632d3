"""``icrm-sgl serve``: the judge as an HTTP service (FastAPI + uvicorn, the ``serve`` extra).

``payloads`` checks request bodies, ``batcher`` feeds one queue into ``judge_batch``,
``metrics`` renders Prometheus text, ``app`` holds the routes and ``server`` runs uvicorn
with a draining shutdown.
"""
