"""``hfcompress card``, ``push`` and ``push-grid``: the model card and publishing to the Hub."""

from __future__ import annotations

import argparse
from typing import Any

from ..publish import push_folder, push_grid, rewrite_model_card
from ._common import command


def add_card_parser(sub: Any) -> None:
    p = sub.add_parser("card", help="rewrite the model card (README.md) of a saved variant from its hfcompress.json and results.json")
    p.add_argument("folder", help="variant folder saved by hfcompress")
    p.add_argument("--template", help="your own Jinja card template (default: hfcompress's modelcard.md.j2)")
    p.add_argument("--repo-id", help="repo id to show in the load snippets (default: a placeholder path)")
    p.add_argument("--base-model", help="Hub id of the base model when the variant was made from a local folder")
    p.add_argument("--quantized-by", help="name to credit in the card's quantized_by field (default $HFCOMPRESS_QUANTIZED_BY)")


@command("card")
def _cmd_card(args: argparse.Namespace) -> int:
    path = rewrite_model_card(args.folder, template=args.template, repo_id=args.repo_id, base_model=args.base_model,
                              quantized_by=args.quantized_by)
    print(f"wrote {path}")
    return 0


def add_push_parser(sub: Any) -> None:
    p = sub.add_parser("push", help="upload a saved variant to a Hub model repo in one commit (token: HF_TOKEN or `hf auth login`)")
    p.add_argument("folder", help="variant folder saved by hfcompress")
    p.add_argument("repo_id", help="target repo, e.g. me/SmolLM2-135M-Instruct-GPTQ-4bit (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    p.add_argument("--revision", help="branch to commit to (created from main if missing)")
    p.add_argument("--message", help="commit message (default: 'Add <name> (hfcompress <version>)')")
    p.add_argument("--template", help="re-render the card with this Jinja template before uploading")
    p.add_argument("--quantized-by", help="name to credit in the card's quantized_by field")
    p.add_argument("--base-model", help="Hub id of the base model when the variant was made from a local folder")


@command("push")
def _cmd_push(args: argparse.Namespace) -> int:
    info = push_folder(args.folder, args.repo_id, private=args.private, create_pr=args.create_pr, revision=args.revision,
                       commit_message=args.message, template=args.template, quantized_by=args.quantized_by,
                       base_model=args.base_model)
    where = getattr(info, "pr_url", None) or getattr(info, "commit_url", None) or str(info)
    print(f"pushed {args.folder} to {args.repo_id}: {where}")
    return 0


def add_push_grid_parser(sub: Any) -> None:
    p = sub.add_parser("push-grid", help="publish every variant of a grid run, one repo each, grouped in a collection")
    p.add_argument("runs_dir", help="runs folder of a grid (subfolders holding hfcompress.json)")
    p.add_argument("namespace", help="user or org ('me' -> me/<base>-<variant>), or a repo prefix such as me/SmolLM2-")
    p.add_argument("--private", action="store_true", help="create the repos and the collection private")
    p.add_argument("--create-pr", action="store_true", help="open pull requests instead of committing to main")
    p.add_argument("--no-collection", action="store_true", help="do not create or update a collection")
    p.add_argument("--collection-title", help="collection title (default: '<base> compressed variants')")
    p.add_argument("--template", help="render the cards with this Jinja template")
    p.add_argument("--quantized-by", help="name to credit in the cards' quantized_by field")


@command("push-grid")
def _cmd_push_grid(args: argparse.Namespace) -> int:
    out = push_grid(args.runs_dir, args.namespace, private=args.private, create_pr=args.create_pr,
                    collection=not args.no_collection, collection_title=args.collection_title, template=args.template,
                    quantized_by=args.quantized_by)
    for folder, repo_id in out.repos.items():
        print(f"pushed {folder} to {repo_id}")
    if out.collection_url:
        print(f"collection: {out.collection_url}")
    return 0
