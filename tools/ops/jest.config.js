module.exports = require('../../jest.preset.js')('ops', __dirname);
