#!/usr/bin/env bash
# Refresh the third-party static files under static/vendor/ from the npm registry (`npm pack`).
# No CDN at runtime: WhiteNoise serves these files, so the console works on a closed network.
#
# Pinned versions (change them here, run this script, review the diff, commit static/vendor/):
#   htmx.org  2.0.11   static/vendor/htmx/htmx.min.js  (BSD-2-Clause, LICENSE beside it)
#     The 2.x line is the one django-htmx documents; 4.x changes attribute inheritance and event names.
#   plotly.js-dist-min  4.1.2   static/vendor/plotly/plotly.min.js  (MIT, LICENSE beside it)
#     The charts of the costs dashboards; figures are built server-side as plain JSON (no Python plotly).
#     plotly.css, plotly-maplibre.css and templates/costs/includes/plotly_styles.html are generated from
#     the bundle by scripts/plotly_css.py (the styles plotly.js would inject inline: CSP).
#
# The CSS is our own (static/css/atalaya.css): no CSS framework is vendored.
#
# Usage: scripts/vendor-static.sh        (needs node/npm and network access to the npm registry)
set -euo pipefail

HTMX_VERSION="2.0.11"
PLOTLY_VERSION="4.1.2"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch <package> <version>: unpack the registry tarball into $work/<package>
  local package="$1" version="$2"
  (cd "$work" && npm pack --silent "${package}@${version}" >/dev/null)
  local tarball
  tarball="$(ls "$work"/*.tgz)"
  mkdir -p "$work/$package"
  tar -xzf "$tarball" -C "$work/$package" --strip-components=1
  rm -f "$tarball"
}

fetch htmx.org "$HTMX_VERSION"
dest="$root/static/vendor/htmx"
mkdir -p "$dest"
cp "$work/htmx.org/dist/htmx.min.js" "$dest/htmx.min.js"
cp "$work/htmx.org/LICENSE" "$dest/LICENSE"
echo "htmx.org $HTMX_VERSION" > "$dest/VERSION"

fetch plotly.js-dist-min "$PLOTLY_VERSION"
dest="$root/static/vendor/plotly"
mkdir -p "$dest"
cp "$work/plotly.js-dist-min/plotly.min.js" "$dest/plotly.min.js"
cp "$work/plotly.js-dist-min/LICENSE" "$dest/LICENSE"
echo "plotly.js-dist-min $PLOTLY_VERSION" > "$dest/VERSION"
# Plotly's style rules as a stylesheet, so that it injects no inline <style> (the content security policy).
python3 "$root/scripts/plotly_css.py"

echo "Vendored into static/vendor/:"
find "$root/static/vendor" -type f -printf '  %P (%s bytes)\n' | sort
