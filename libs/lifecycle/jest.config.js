module.exports = require('../../jest.preset.js')('lifecycle', __dirname);
