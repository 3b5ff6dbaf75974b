#!/usr/bin/env bash
# test_readme.sh -- the README's examples run as written (issue 16, item 5): every ```sh block that follows
# an "<!-- example: ... -->" line is run, command by command (continuation lines joined; `gridmill` is the
# supervisor of this tree, `cd build/demo/data` the demo data folder, made here small by scripts/make-demo-data
# with the demo's file names), and must exit 0 and leave its --out folder with its outputs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/demo/data
"$PYTHON" "$GM_ROOT/scripts/make-demo-data" "$D" --size 300 240 >"$GM_LOGS/demo-data.out" 2>&1 ||
  fail "make-demo-data: $(tail -n 3 "$GM_LOGS/demo-data.out")"
"$PYTHON" - "$GM_ROOT/README.md" >"$T/examples.txt" <<'PY' || fail "cannot read the README's examples"
import re, sys
text = open(sys.argv[1]).read().split("\n")
out, i = [], 0
while i < len(text):
    if text[i].startswith("<!-- example:") and i + 1 < len(text) and text[i + 1].strip() == "```sh":
        i += 2
        cmd = ""
        while text[i].strip() != "```":
            line = re.sub(r"\s+#.*$", "", text[i]).rstrip()
            cmd += line[:-1] + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                if cmd.strip():
                    out.append(re.sub(r"\s+", " ", cmd.strip()))
                cmd = ""
            i += 1
    i += 1
print("\n".join(out))
PY
n=$(wc -l <"$T/examples.txt")
[ "$n" -ge 3 ] || fail "the README has $n example commands, expected at least 3"
cd "$D"
k=0
while read -r cmd; do
  k=$((k + 1))
  case $cmd in
    "cd build/demo/data") ok "example $k: cd into the demo data folder"; continue ;;
    gridmill\ *) ;;
    *) fail "example $k is not a gridmill command: $cmd" ;;
  esac
  out=$(sed -n 's/.*--out \([^ ]*\).*/\1/p' <<<"$cmd")
  read -r -a argv <<<"${cmd#gridmill }"
  echo "   \$ $cmd"
  set +e
  timeout -k 5 "$GM_RUN_TIMEOUT" "$GRIDMILL" "${argv[@]}" >"$GM_LOGS/example$k.out" 2>"$GM_LOGS/example$k.err"
  rc=$?
  set -e
  [ "$rc" -eq 0 ] || { tail -n 5 "$GM_LOGS/example$k.err" >&2; fail "example $k exited $rc: $cmd"; }
  ls "$out"/*.tif >/dev/null 2>&1 || fail "example $k: no output raster in $out"
  ok "example $k: exit 0; $out holds $(find "$out" -maxdepth 1 -name '*.tif' | wc -l) rasters"
done <"$T/examples.txt"
