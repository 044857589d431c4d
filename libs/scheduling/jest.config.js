module.exports = require('../../jest.preset.js')('scheduling', __dirname);
