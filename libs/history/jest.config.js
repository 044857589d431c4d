module.exports = require('../../jest.preset.js')('history', __dirname);
