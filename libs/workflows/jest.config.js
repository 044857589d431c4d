module.exports = require('../../jest.preset.js')('workflows', __dirname);
