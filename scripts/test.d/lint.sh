# lint.sh: luacheck over the Lua code (sourced by scripts/test.sh)
# SPDX-License-Identifier: MIT
program "lint (luacheck lua bin spec examples bench)" luacheck --config .luacheckrc lua bin spec examples bench
