"""Build the Teams app package: ``teams/manifest.json`` and its two icons, zipped at the root.

``make teams-package`` runs this. When ``TEAMS_APP_ID`` is set (environment or ``.env``) it
becomes the bot id in the packaged manifest, so the repository can keep a placeholder; bump
``version`` in the manifest for every upload, Teams caches apps by version.

Standard library only, and run as a script (``python bot/teams/package.py [--source teams]
[--out dist/insightbot-teams.zip]``) so packaging needs neither the virtualenv nor the SDK.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile
from pathlib import Path

ICONS = ("color.png", "outline.png")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def build(source: Path, out: Path, *, bot_id: str | None = None) -> Path:
    """Write the package to ``out``; returns it. ``bot_id`` replaces the manifest's bot id."""
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    if bot_id:
        if not _GUID.match(bot_id):
            raise ValueError("TEAMS_APP_ID must be the Entra application (client) id, a GUID")
        for bot in manifest.get("bots", []):
            bot["botId"] = bot_id
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for icon in ICONS:
            package.write(source / icon, arcname=icon)
    return out


def _app_id_from_dotenv(path: Path) -> str | None:
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "TEAMS_APP_ID":
            return value.strip().strip("'\"") or None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("teams"))
    parser.add_argument("--out", type=Path, default=Path("dist/insightbot-teams.zip"))
    args = parser.parse_args(argv)
    bot_id = os.environ.get("TEAMS_APP_ID") or _app_id_from_dotenv(Path(".env"))
    try:
        out = build(args.source, args.out, bot_id=bot_id)
    except (OSError, ValueError) as exc:
        print(f"teams-package: {exc}", file=sys.stderr)
        return 1
    note = "" if bot_id else " (bot id is the placeholder: set TEAMS_APP_ID)"
    print(f"wrote {out}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
