const base = require('../../jest.preset.js')('e2e', __dirname);
module.exports = base;
