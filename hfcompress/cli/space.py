"""``hfcompress space`` and ``hfcompress push-space``: run the comparison app, or deploy it to a Hub Space."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import HFCompressError
from ..space import push_space, serve
from ..space.variants import looks_like_collection
from ._common import command


def add_space_parser(sub: Any) -> None:
    p = sub.add_parser("space", help="run the comparison app (Gradio) on a runs folder or a Hub collection")
    p.add_argument("source", nargs="?", default=None, help="runs folder of saved variants, one variant folder, or a Hub collection id (default: ./runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 to share on the network)")
    p.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    p.add_argument("--memory-mb", type=float, default=None, help="memory budget for loaded models in MB (default $HFCOMPRESS_SPACE_MEMORY_MB or 4096)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")


@command("space")
def _cmd_space(args: argparse.Namespace) -> int:
    source = args.source or "runs"
    if not Path(source).expanduser().exists() and not looks_like_collection(str(source)):
        raise HFCompressError(f"{source!r}: no such folder, and not a Hub collection id (owner/title-0123456789abcdef0123); "
                              "pass a runs folder of saved variants, a variant folder or a collection id")
    serve(args.source, host=args.host, port=args.port, memory_mb=args.memory_mb, share=args.share)
    return 0


def add_push_space_parser(sub: Any) -> None:
    p = sub.add_parser("push-space", help="deploy the comparison app to a Hub Space wired to a collection or bundled results")
    p.add_argument("repo_id", help="Space id, e.g. me/compare-smollm2")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--results", help="runs folder: each variant's results.json, hfcompress.json, README.md, recipe.yaml are bundled (no weights)")
    where.add_argument("--collection", help="Hub collection id whose model repos the Space reads at start")
    p.add_argument("--title", default=None, help="Space title (default: Compare <base> variants)")
    p.add_argument("--private", action="store_true", help="create the Space private")
    p.add_argument("--requirement", default=None, help="pip spec that installs hfcompress in the Space (default: hfcompress[space])")
    p.add_argument("--variants-on", default=None, metavar="NAMESPACE",
                   help="with --results: where push-grid published the variants (same NAMESPACE or prefix), so the Space "
                        "loads their weights from those repos for side-by-side generation")


@command("push-space")
def _cmd_push_space(args: argparse.Namespace) -> int:
    url = push_space(args.repo_id, results=args.results, collection=args.collection, private=args.private,
                     title=args.title, requirement=args.requirement, variants_on=args.variants_on)
    print(f"deployed the comparison Space to {url}")
    return 0
