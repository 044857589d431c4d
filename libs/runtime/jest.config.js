module.exports = require('../../jest.preset.js')('runtime', __dirname);
