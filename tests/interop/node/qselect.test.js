// Placeholder: filled by issue 13's work on this area.
'use strict';
const test = require('node:test');
test('placeholder', () => {});
