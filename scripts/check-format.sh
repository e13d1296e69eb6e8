#!/usr/bin/env bash
# check-format.sh - every C file in the repository is formatted as the committed
# .clang-format says (clang-format --dry-run --Werror); prints the files that
# are not and exits 1. Run from anywhere inside the checkout.
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
bad=()
while IFS= read -r f; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h' | grep -v '^subprojects/')
if [ ${#bad[@]} -gt 0 ]; then
    echo "check-format: not formatted (run clang-format -i on them):"
    printf '  %s\n' "${bad[@]}"
    exit 1
fi
echo "check-format: $(git ls-files '*.c' '*.h' | grep -vc '^subprojects/') files formatted"
