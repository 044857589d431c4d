module.exports = require('../../jest.preset.js')('quota', __dirname);
