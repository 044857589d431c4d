module.exports = require('../../jest.preset.js')('bench', __dirname);
