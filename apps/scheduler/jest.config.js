module.exports = require('../../jest.preset.js')('scheduler', __dirname);
