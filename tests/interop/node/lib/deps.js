// deps.js - loads the npm packages the interop tests use, and fails loudly
// (never skips) when `npm ci` has not been run in tests/interop/node.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const modules = path.join(root, 'node_modules');

function need(name) {
  if (!fs.existsSync(path.join(modules, name, 'package.json'))) {
    throw new Error(
      `interop: ${path.join(modules, name)} is missing. Install the pinned packages with ` +
        `"npm ci --prefix tests/interop/node" (scripts/dev.sh does it).`);
  }
  return require(path.join(modules, name));
}

module.exports = { need, root, modules };
