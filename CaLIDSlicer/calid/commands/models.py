"""``calid models``: list, inspect, download or import model files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from calid.commands.argtypes import existing

HELP = "list, inspect, fetch or import model files (safetensors + config + model card)"
DESCRIPTION = (
    "Models are looked up in $CALID_MODEL_DIR, the models bundled with the extension, then the user "
    "cache (~/.cache/calid/models). Only `calid models fetch` uses the network; every download is "
    "checked against the SHA-256 in the registry. Offline sites copy the archive by hand and use "
    "`calid models import`."
)


_existing_path = existing("{text} does not exist; give a model directory or a .zip/.tar.gz of one")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="registry models and installed models, with where they are")
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    info = actions.add_parser("info", help="registry entry, config and model card of one model")
    info.add_argument("name", metavar="NAME")
    info.add_argument("--json", action="store_true", help="print registry entry, config and card as JSON")
    imported = actions.add_parser("import", help="install a model directory or archive copied by hand (offline)")
    imported.add_argument("path", metavar="PATH", type=_existing_path)
    imported.add_argument("--sha256", metavar="HASH", help="expected SHA-256 of the archive (or of a directory's model.safetensors)")
    imported.add_argument("--cache-dir", type=Path, help="install here instead of the user cache")
    fetch = actions.add_parser("fetch", help="download a registry model, check its SHA-256 and install it")
    fetch.add_argument("name", metavar="NAME")
    fetch.add_argument("--cache-dir", type=Path, help="install here instead of the user cache")
    fetch.add_argument("--progress", choices=("bar", "json", "none"), default="bar", help="download progress (default: bar)")


def run(args: argparse.Namespace) -> int:
    from calid.models.fetch import fetch_model, import_model
    from calid.models.format import read_config
    from calid.models.registry import list_models

    if args.action == "list":
        return _print_list(list_models(), args.json)
    if args.action == "info":
        return _print_info(args.name, args.json)
    if args.action == "import":
        path = import_model(args.path, sha256=args.sha256, cache_dir=args.cache_dir)
    else:
        path = fetch_model(args.name, cache_dir=args.cache_dir, progress=args.progress)
    config = read_config(path)
    print(f"installed {config.name} {config.version} ({config.kind}) in {path}")
    return 0


def _print_list(rows: list[dict], as_json: bool) -> int:
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no models in the registry and none installed")
        return 0
    print(f"{'NAME':<24} {'VERSION':<10} {'KIND':<10} {'INSTALLED':<10} WHERE")
    for row in rows:
        version = row.get("version") or row.get("installed_version") or "?"
        kind = row.get("kind") or row.get("installed_kind") or "?"
        status = "yes" if row["installed"] else "no"
        if row["installed"] and row.get("version") and row.get("installed_version") != row["version"]:
            status = f"v{row['installed_version']}"
        where = row["path"] or ("bundled" if row.get("bundled") else "`calid models fetch`")
        print(f"{row['name']:<24} {version:<10} {kind:<10} {status:<10} {where}")
    return 0


def _print_info(name: str, as_json: bool) -> int:
    from calid.errors import ModelError
    from calid.models.format import CARD_FILE, read_config
    from calid.models.registry import load_registry
    from calid.models.search import find_model

    entry = next((row for row in load_registry()["models"] if row["name"] == name), None)
    try:
        path = find_model(name)
    except ModelError:
        if entry is None:
            raise
        path = None
    config = read_config(path) if path else None
    card_file = path / CARD_FILE if path else None
    card = card_file.read_text(encoding="utf-8") if card_file and card_file.is_file() else None
    if as_json:
        from dataclasses import asdict

        info = {"registry": entry, "path": str(path) if path else None, "config": config and asdict(config), "card": card}
        print(json.dumps(info, indent=2))
        return 0
    if entry:
        print(f"{entry['name']} {entry['version']} ({entry['kind']}): {entry['description']}")
        print(f"  license: {entry['license']}\n  url: {entry['url'] or 'bundled'}\n  sha256: {entry['sha256']}")
    print(f"  installed: {path}" if path else f"  not installed: run `calid models fetch {name}`")
    if config:
        print(f"  config: {config.architecture} {config.version} kwargs={json.dumps(config.kwargs)}")
    if card:
        print("\n" + card.rstrip())
    return 0
