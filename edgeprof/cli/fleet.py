"""CLI commands for the fleet: ``push`` (this device's finished runs to object storage or a shared folder), and the
``--fleet URL`` views of ``runs`` and ``show`` (registered in ``run.py``).

Exit codes as elsewhere: 2 a malformed URL or a foreign object under the prefix, 1 a store that cannot be reached or
written (nothing is marked pushed: the next push sends what is not there).
"""

from __future__ import annotations

from ..stats import plural
from .text import print_json


def register(sub) -> None:
    p = sub.add_parser("push", help="push finished runs to the fleet's object storage or shared folder",
                       description="Write this data directory's finished runs that are not at URL yet as immutable "
                                   "Parquet objects, one partition per device (device=<id>/...). S3 credentials and "
                                   "endpoint come from the standard AWS environment and config (AWS_ENDPOINT_URL, "
                                   "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE).")
    p.add_argument("url", metavar="URL", help="s3://BUCKET/PREFIX or a folder path (default: $EDGEPROF_FLEET)",
                   nargs="?")
    p.add_argument("--db", metavar="PATH", help="DuckDB file (default: $EDGEPROF_DB, else runs.duckdb in the data "
                                                "directory)")
    p.add_argument("--json", action="store_true", help='print {"pushed": n, "skipped": m, ...} on stdout')
    p.set_defaults(func=cmd_push)


def fleet_url(args) -> str:
    from ..errors import UsageError
    from ..store.fleet import fleet_url as resolve

    url = resolve(getattr(args, "url", None) or getattr(args, "fleet", None))
    if not url:
        raise UsageError("no fleet URL was given and EDGEPROF_FLEET is not set.",
                         "Give s3://BUCKET/PREFIX or a folder path.")
    return url


def cmd_push(args) -> int:
    from ..device import identity
    from ..store.fleet import push
    from .run import open_store

    url = fleet_url(args)
    store = open_store(args.db)
    ident = identity()
    res = push(store, url)
    res = {**res, "device_id": ident.device_id, "device_name": ident.device_name}
    if args.json:
        print_json(res)
    else:
        print(f"pushed {plural(res['pushed'], 'run')} ({res['objects']} objects, {res['bytes'] / 1e6:.2f} MB) to {res['url']}; "
              f"{res['skipped']} were there already")
    return 0
